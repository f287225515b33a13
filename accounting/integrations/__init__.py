"""Integrations with other libraries' accountants and training loops.

Nothing is imported here: ``import accounting`` and ``import accounting.integrations`` never
import a third-party library; each submodule says what it needs.

- :mod:`accounting.integrations.opacus` - Opacus accountants (``RdpOpacusAccountant``,
  ``PldOpacusAccountant``) backed by :class:`accounting.RdpAccountant` and
  :class:`accounting.PldAccountant`; importing it imports Opacus
  (``pip install 'dpsgd-accounting[opacus]'``).
- :mod:`accounting.integrations.dp_accounting` - dp_accounting ``DpEvent`` trees to
  :mod:`accounting.events` and back.
"""

__all__: list[str] = []
