"""``PrivateKerasModel``: train a Keras model with DP-SGD and report the epsilon spent.

The API of hosted DP-SGD notebooks::

    model = PrivateKerasModel(keras_model, l2_norm_clip=1.0, noise_multiplier=1.1)
    model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(x=PrivateDataLoader(features, labels, batch_size=256), epochs=3,
                        target_delta=1e-5)
    history.history["epsilon"][-1], model.predict(features)

Every step draws a batch with the loader's sampler
(:class:`~dpsgd_kernels.tf_adapter.data.PrivateDataLoader`, Poisson by default), clips every
example's gradient, adds noise and divides by the loader's constant normaliser (the expected
batch size; :class:`~dpsgd_kernels.tf_adapter.dp_step.TFDPStep`), applies the Keras optimizer,
and records what the sampler released in a :class:`~dpsgd_kernels.ledger.PrivacyLedger` over the
model's accountant (an :class:`accounting.RdpAccountant` by default; ``accountant="pld"`` reports
certified upper bounds): ``PoissonSampled(q, Gaussian(sigma))`` per Poisson step,
``SampledWithoutReplacement(n, b, Gaussian(sigma / 2))`` per fixed-size step (replace-one
neighbours: an accountant made by name is made with ``neighboring="replace_one"``),
``TruncatedPoissonGaussian(n, q, B, sigma)`` per truncated-Poisson step,
``ShuffledEpoch(t, Gaussian(sigma))`` per shuffled epoch and ``RandomAllocation(t,
Gaussian(sigma))`` per balls-in-bins epoch (see :mod:`dpsgd_kernels.sampling`). ``fit`` refuses
before the first step when the accountant cannot compose the sampler's event, and never reports
another sampler's epsilon in its place. With Poisson sampling, after ``epochs`` epochs in total
the epsilon reported with RDP equals :func:`accounting.get_privacy_budget` for the same run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

import accounting
from dpsgd_kernels._validation import (
    check_array,
    check_l2_norm_clip,
    check_noise_multiplier,
    check_positive_int,
)
from dpsgd_kernels.ledger import (
    PrivacyLedger,
    check_accounts_for,
    make_ledger_accountant,
    relation_text,
    sampler_accountant,
)
from dpsgd_kernels.tf_adapter._imports import require_tensorflow
from dpsgd_kernels.tf_adapter.data import PrivateDataLoader
from dpsgd_kernels.tf_adapter.dp_step import TFDPStep, model_shape
from dpsgd_kernels.tf_adapter.losses import check_targets, loss_name

__all__ = ["PrivateHistory", "PrivateKerasModel"]


@dataclass
class PrivateHistory:
    """What ``fit`` did, Keras-style: ``history["loss"]``, ``history["epsilon"]``, metrics.

    Attributes
    ----------
    history : dict of str to list of float
        One value per epoch: mean training loss (not privatized), every compiled metric on the
        training batches (not privatized), and ``epsilon`` spent so far at ``target_delta``.
    epoch : list of int
        Epoch numbers (0-based, continuing across ``fit`` calls).
    steps : int
        DP-SGD steps taken by this ``fit`` call.
    sampling : str
        The loader's sampler.
    neighboring : str
        Relation the epsilon is for: ``"add_remove"``, ``"replace_one"`` or ``"zero_out"``.
    """

    history: dict[str, list[float]] = field(default_factory=dict)
    epoch: list[int] = field(default_factory=list)
    steps: int = 0
    sampling: str = "poisson"
    neighboring: str = "add_remove"


def _check_target_delta(target_delta) -> None:
    accounting.get_privacy_budget(1, 1, 0, 1.0, target_delta)  # names target_delta


def _metric_objects(metrics, loss):
    keras = require_tensorflow().keras
    objects = []
    for metric in metrics or []:
        if metric in ("accuracy", "acc"):
            name = loss_name(loss)
            if "binary" in name:
                objects.append(keras.metrics.BinaryAccuracy(name="accuracy"))
            elif "sparse" in name:
                objects.append(keras.metrics.SparseCategoricalAccuracy(name="accuracy"))
            else:
                objects.append(keras.metrics.CategoricalAccuracy(name="accuracy"))
        elif isinstance(metric, str):
            resolved = keras.metrics.get(metric)
            if not isinstance(resolved, keras.metrics.Metric):
                resolved = keras.metrics.MeanMetricWrapper(resolved, name=metric)
            objects.append(resolved)
        elif isinstance(metric, keras.metrics.Metric):
            objects.append(metric)
        else:
            raise TypeError(f"metrics must hold metric names or keras.metrics.Metric objects, "
                            f"got {metric!r}")
    return objects


def _compiled_update(metrics):
    """One ``tf.function`` updating every metric (eager updates cost more than a DP step)."""
    tf = require_tensorflow()

    def update(y_true, y_pred):
        for metric in metrics:
            metric.update_state(y_true, y_pred)

    compiled = tf.function(update, reduce_retracing=True)
    return lambda y_true, y_pred: compiled(tf.convert_to_tensor(y_true), y_pred)


class PrivateKerasModel:
    """A Keras model trained with DP-SGD (per-example clipping, Gaussian noise, Poisson batches).

    Parameters
    ----------
    model : keras.Model
        A built Keras model (Keras 2 or 3), trained in place.
    l2_norm_clip : float
        Clipping norm ``0 < C <= 1e12`` of every example's gradient.
    noise_multiplier : float
        ``0 < sigma <= 1e6``; noise standard deviation ``sigma C``.
    seed : int, optional
        Seed of the noise generator (``None``: fresh entropy).
    device : str, optional
        TensorFlow device (default: the GPU if TensorFlow finds one, else the CPU).
    method : {"auto", "layerwise", "vectorized_map"}
        Per-example gradient computation, see :class:`~dpsgd_kernels.tf_adapter.dp_step.TFDPStep`.
    accountant : str or accounting.Accountant
        What the steps are composed in (:attr:`accountant`): a registry name (``"rdp"``, the
        default, ``"moments"``, ``"pld"``, ...) or an accountant instance; ``fit`` can change it.

    Notes
    -----
    A model built in a ``tf.distribute`` strategy's scope (``MirroredStrategy``,
    ``MultiWorkerMirroredStrategy``) trains data-parallel: ``compile`` makes the optimizer in
    that scope, every global batch the loader draws is split over the replicas (each example on
    exactly one), the noise is added once per global step and the sum divided by the loader's
    global expected batch size (see :class:`~dpsgd_kernels.tf_adapter.dp_step.TFDPStep`); the
    ledger records one event per global step, as on one device. Under
    ``MultiWorkerMirroredStrategy`` the loader needs a seed (all workers draw the same batches),
    and the metrics cover the examples of the worker's own replicas.
    """

    def __init__(self, model, l2_norm_clip: float, noise_multiplier: float, *,
                 seed: int | None = None, device: str | None = None, method: str = "auto",
                 accountant: str | accounting.Accountant = "rdp"):
        require_tensorflow()
        self.model = model
        self.l2_norm_clip = check_l2_norm_clip(l2_norm_clip)
        self.noise_multiplier = check_noise_multiplier(noise_multiplier, allow_zero=False)
        self._seed, self._device, self._method = seed, device, method
        self.accountant = make_ledger_accountant(accountant)
        # the name it was made by: a fresh named accountant is remade for a sampler's relation
        self._accountant_name = accountant if isinstance(accountant, str) else None
        self.optimizer = self.loss = self._step = None
        self.metrics: list = []
        self._metric_specs: list = []
        self._update_metrics = None
        self._epochs_done = 0.0
        self._epoch_index = 0
        self._sample_size: int | None = None
        self._batch_size: int | None = None
        self._sampling: str | None = None

    def compile(self, optimizer="sgd", loss=None, metrics=None) -> None:
        """Set the optimizer (any Keras optimizer or its name), the loss and the metrics.

        ``loss`` is any standard Keras loss (name, ``keras.losses.Loss`` or function); it is
        evaluated per example. ``metrics`` are names (``"accuracy"`` picks binary, sparse or
        categorical accuracy from the loss) or ``keras.metrics.Metric`` objects.
        """
        if loss is None:
            raise ValueError("loss must be given (a Keras loss name, Loss object or function)")
        keras = require_tensorflow().keras
        self.loss = loss
        self._step = TFDPStep(self.model, loss, self.l2_norm_clip, self.noise_multiplier,
                              seed=self._seed, device=self._device, method=self._method)
        if self._step.strategy is None:
            self.optimizer = keras.optimizers.get(optimizer)
        else:
            with self._step.strategy.scope():  # its variables mirrored like the model's
                self.optimizer = keras.optimizers.get(optimizer)
        self.metrics = _metric_objects(metrics, loss)
        self._metric_specs = list(metrics or [])
        self._update_metrics = _compiled_update(self.metrics) if self.metrics else None

    def _check_data(self, loader: PrivateDataLoader) -> None:
        """All of the loader's features and labels against the model and the loss, before the
        first step (the loader has checked they are finite)."""
        features = loader.features
        expected = model_shape(self.model, "input_shape")
        if expected is not None and (
            features.ndim != len(expected)
            or any(d is not None and d != s for d, s in zip(expected[1:], features.shape[1:],
                                                            strict=True))
        ):
            dims = ", ".join("?" if d is None else str(d) for d in expected[1:])
            raise ValueError(f"feature_df must have shape (N, {dims}) for the model's input, "
                             f"got {features.shape}")
        output = model_shape(self.model, "output_shape")
        if output is not None and len(output) == 2 and output[1] is not None:
            check_targets(self.loss, loader.labels, (loader.sample_size, output[1]), "label_df")

    def _check_compiled(self) -> TFDPStep:
        if self._step is None:
            raise RuntimeError("call compile(optimizer, loss, metrics) before fit")
        return self._step

    def epsilon(self, target_delta: float) -> float:
        """Epsilon spent so far at ``target_delta`` (0 before any step; the certified upper
        bound with a tight accountant such as ``"pld"``)."""
        _check_target_delta(target_delta)
        return PrivacyLedger(target_delta, accountant=self.accountant).epsilon

    def _accountant_for(self, accountant, neighboring: str, sampling: str):
        """``(accountant, name)`` that ``fit`` composes in: ``accountant`` (a name or an
        instance) made ready, and the name it was made by (``None`` for an instance); the
        model's is not changed here.

        A name is made for the sampler's ``neighboring`` relation (``neighboring="replace_one"``
        for fixed-size batches). ``None`` keeps the model's accountant, remade for the relation
        if it was made by name and holds no step yet. The model's own accountant, or the name
        it was made by (for the same relation), keeps it. Another one takes over the steps taken
        so far, replayed as events (so its epsilon covers the whole run): it must then be fresh,
        unless the model has taken no step yet (an instance holding a history, e.g. restored
        with ``load_state_dict``, continues that run).
        """
        wanted = "replace_one" if neighboring == "replace_one" else "add_remove"
        own = (self.accountant, self._accountant_name)
        if accountant is None:
            if (self._accountant_name is None or self.accountant.history
                    or self.accountant.neighboring == wanted):
                return own
            accountant = self._accountant_name
        if accountant is self.accountant:
            return own
        if (isinstance(accountant, str) and accountant == self.accountant.name
                and self.accountant.neighboring == wanted):
            return own
        if isinstance(accountant, str):
            new = sampler_accountant(accountant, neighboring, sampling=sampling)
        else:
            new = make_ledger_accountant(accountant)
        if self.accountant.history:
            if new.history:
                raise ValueError(
                    "accountant must be fresh (or the model's own): the steps this model has "
                    "taken are replayed into it, and it holds a history already"
                )
            history = self.accountant.history
            trial = new.copy()
            for record in history:  # raises UnsupportedEventError before new changes
                trial.compose(record.event, record.count)
            for record in history:
                new.compose(record.event, record.count)
        return new, (accountant if isinstance(accountant, str) else None)

    def fit(self, x=None, y=None, *, epochs: int = 1, target_delta: float = 1e-5,
            batch_size: int | None = None, verbose: int = 1,
            accountant: str | accounting.Accountant | None = None) -> PrivateHistory:
        """Train privately for ``epochs`` epochs; report loss, metrics and epsilon per epoch.

        Parameters
        ----------
        x : PrivateDataLoader or array_like
            The loader, or features (then ``y`` and ``batch_size`` are required and a loader is
            made of them). All features and labels are checked before the first step: finite,
            of the model's input shape, and targets the loss accepts for the model's output
            width (e.g. sparse labels in ``[0, classes - 1]``, binary labels in ``[0, 1]``).
        epochs : int
            Epochs ``>= 1``. Over all ``fit`` calls, epoch ``e`` ends after ``ceil(e N / B)``
            steps in total, so the epsilon reported equals
            ``get_privacy_budget(N, B, e, noise_multiplier, target_delta)``.
        target_delta : float
            Delta in ``(0, 1)`` at which epsilon is reported.
        verbose : int
            1 prints one line per epoch, 0 is silent.
        accountant : str or accounting.Accountant, optional
            The accountant the steps are composed in: a registry name (``"rdp"``, ``"pld"``,
            ...; made with ``neighboring="replace_one"`` for a fixed-size loader) or an
            instance; ``None`` (default) keeps the model's (``"rdp"`` unless the constructor
            chose another). With ``"pld"`` the epsilon reported is the certified upper bound.
            Switching accountant after steps were taken replays them into the new one, so the
            epsilon always covers every step of the model.

        Raises
        ------
        accounting.UnsupportedEventError
            Before any step, when the accountant cannot compose the loader's sampler's event
            (e.g. truncated Poisson needs ``"pld"``); the message names the sampler, the
            accountant and the accountants that can.
        """
        step = self._check_compiled()
        if not isinstance(x, PrivateDataLoader):
            if y is None or batch_size is None:
                raise TypeError("x must be a PrivateDataLoader, or features with y and batch_size")
            x = PrivateDataLoader(x, y, batch_size)
        elif y is not None:
            raise TypeError("y must be None when x is a PrivateDataLoader (it holds the labels)")
        tf = require_tensorflow()
        if (isinstance(step.strategy, tf.distribute.MultiWorkerMirroredStrategy)
                and x.seed is None):
            raise ValueError("x must be a PrivateDataLoader with a seed under "
                             "MultiWorkerMirroredStrategy: every worker draws the same batches")
        epochs = check_positive_int(epochs, "epochs")
        _check_target_delta(target_delta)  # validate before training
        self._check_data(x)
        chosen, name = self._accountant_for(accountant, x.neighboring, x.sampling)
        unit_event = x.event(self.noise_multiplier)
        check_accounts_for(chosen, unit_event, sampling=x.sampling, neighboring=x.neighboring)
        self.accountant, self._accountant_name = chosen, name
        per_epoch_event = x.unit == "epoch"
        ledger = PrivacyLedger(target_delta, accountant=self.accountant)
        if (self._sample_size, self._batch_size, self._sampling) != (
                x.sample_size, x.batch_size, x.sampling):
            self._epochs_done = 0.0  # another data set: count its epochs afresh (RDP composes)
        self._sample_size, self._batch_size, self._sampling = (
            x.sample_size, x.batch_size, x.sampling)
        relation = ("replace_one" if self.accountant.neighboring == "replace_one"
                    else x.neighboring)
        result = PrivateHistory(sampling=x.sampling, neighboring=relation)
        for _ in range(epochs):
            if per_epoch_event:
                steps = x.steps_per_epoch
                ledger.record_event(unit_event)  # the epoch's one release, before its steps
            else:
                done = math.ceil(self._epochs_done * x.sample_size / x.batch_size)
                steps = math.ceil((self._epochs_done + 1) * x.sample_size / x.batch_size) - done
            for metric in self.metrics:
                metric.reset_state()
            loss_sum, examples = 0.0, 0
            for x_batch, y_batch in x.batches(steps):
                loss, outputs = step.apply(self.optimizer, x_batch, y_batch,
                                           expected_batch_size=x.expected_batch_size)
                if not per_epoch_event:
                    ledger.record_event(unit_event)
                result.steps += 1
                if len(x_batch):
                    loss_sum += float(loss) * len(x_batch)
                    examples += len(x_batch)
                    if self._update_metrics is not None:
                        if step.strategy is not None:  # the outputs of this worker's replicas
                            y_batch = y_batch[step.local_rows(len(y_batch))]
                        self._update_metrics(y_batch, outputs)
            self._epochs_done += 1
            values = {"loss": loss_sum / examples if examples else math.nan}
            values.update({m.name: float(m.result()) for m in self.metrics})
            values["epsilon"] = ledger.epsilon
            for key, value in values.items():
                result.history.setdefault(key, []).append(value)
            result.epoch.append(self._epoch_index)
            self._epoch_index += 1
            if verbose:
                shown = " - ".join(f"{k}: {v:.4f}" for k, v in values.items())
                print(f"Epoch {self._epoch_index} - {steps} steps - {shown} ({x.sampling} "
                      f"sampling, {relation_text(relation)} neighbours)")
        return result

    def predict(self, x, batch_size: int = 1024) -> np.ndarray:
        """Model outputs for ``x`` (array or pandas object), in chunks of ``batch_size``."""
        tf = require_tensorflow()
        if hasattr(x, "to_numpy"):
            x = x.to_numpy()
        x = check_array(x, "x", dtype=np.dtype(np.float32))
        batch_size = check_positive_int(batch_size, "batch_size")
        chunks = [np.asarray(self.model(tf.constant(x[i:i + batch_size]), training=False))
                  for i in range(0, len(x), batch_size)]
        if not chunks:
            return np.zeros((0,) + tuple(self.model.output_shape[1:]), np.float32)
        return np.concatenate(chunks)

    def evaluate(self, x, y, batch_size: int = 1024) -> dict[str, float]:
        """Mean loss and metrics on ``(x, y)`` (not privatized: for held-out data)."""
        tf = require_tensorflow()
        self._check_compiled()
        outputs = self.predict(x, batch_size)
        y = np.asarray(y.to_numpy() if hasattr(y, "to_numpy") else y)
        if outputs.ndim == 2:
            check_targets(self.loss, y, outputs.shape)
        losses = self._step._loss_fn(tf.constant(y), tf.constant(outputs))
        result = {"loss": float(tf.reduce_mean(losses))}
        specs = [m if isinstance(m, str) else type(m).from_config(m.get_config())
                 for m in self._metric_specs]
        for metric in _metric_objects(specs, self.loss):
            metric.update_state(y, outputs)
            result[metric.name] = float(metric.result())
        return result

    def __repr__(self) -> str:
        return (f"PrivateKerasModel(l2_norm_clip={self.l2_norm_clip}, "
                f"noise_multiplier={self.noise_multiplier}, "
                f"steps={PrivacyLedger(0.5, accountant=self.accountant).steps})")
