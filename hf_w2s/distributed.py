"""Running under ``accelerate launch`` / ``torchrun`` with several processes.

* :func:`process_rows`, :func:`run_on_every_process`, :func:`broadcast_from_main` — how
  :func:`hf_w2s.data.batch_columns.map_batches_to_columns` (``label_dataset``) splits rows over the processes: each
  process writes its part to disk, a barrier (carrying only errors) follows, and every process opens the same files.
* :func:`prepare_weak_model` — place an online weak supervisor for inference only: never wrapped for training (no
  DDP/FSDP wrapper, no gradients), replicated on every device, and sharded under DeepSpeed ZeRO-3 the way TRL
  prepares its teacher models (:func:`weak_model_deepspeed_config` builds that config; a pure function).
* :func:`gather_weighted_means` — exact cross-process means of per-batch metrics (weighted by batch size).
* :func:`enable_fsdp_on_cpu`, :func:`own_fsdp_plugin`, :func:`adapt_model_to_fsdp2` — sharded training (FSDP2)
  of vision models, also with CPU processes (gloo), where accelerate 1.15 does not get there on its own;
  :func:`unshard_model` — a plain replica of an FSDP2-trained model for inference.
"""

from __future__ import annotations

import copy
import logging

import torch

logger = logging.getLogger(__name__)

__all__ = [
    "process_state",
    "process_rows",
    "run_on_every_process",
    "broadcast_from_main",
    "gather_weighted_means",
    "weak_model_deepspeed_config",
    "prepare_weak_model",
    "enable_fsdp_on_cpu",
    "adapt_model_to_fsdp2",
    "own_fsdp_plugin",
    "unshard_model",
]


def _no_accelerator() -> bool:
    accel = getattr(torch, "accelerator", None)
    if accel is not None and hasattr(accel, "is_available"):
        return not accel.is_available()
    return not torch.cuda.is_available()


def process_state():
    """Accelerate's ``PartialState``: several processes under ``torchrun`` / ``accelerate launch``, else one.

    If nothing created the state yet, it is created for CPU processes on a machine without an accelerator (a plain
    ``PartialState()`` there reports one process even under ``torchrun``, and Accelerate's gloo setup needs
    ``cpu=True``). An existing state (e.g. the Trainer's) is used as it is.
    """
    from accelerate import PartialState

    if PartialState._shared_state == {} and _no_accelerator():
        return PartialState(cpu=True)
    return PartialState()


# -- datasets: work split over the processes, results on disk ------------------------------------------------------


def process_rows(num_rows: int, num_processes: int, index: int) -> range:
    """The contiguous rows process ``index`` of ``num_processes`` handles (``Dataset.shard(contiguous=True)``'s
    split: the first ``num_rows % num_processes`` processes take one row more)."""
    div, mod = divmod(num_rows, num_processes)
    start = div * index + min(index, mod)
    return range(start, start + div + (1 if index < mod else 0))


def _describe(error: BaseException | None) -> str | None:
    return None if error is None else f"{type(error).__name__}: {error}"


def _add_note(error: BaseException, note: str) -> None:
    if hasattr(error, "add_note"):  # Python >= 3.11
        error.add_note(note)


def run_on_every_process(work, state, *, what: str, where: str | None = None):
    """``work()`` on this process, then a barrier that also tells every process whether any failed.

    Only one short line per process travels (its error, or ``None``), never data: the results stay where ``work``
    put them (files on a disk every process reads). If ``work`` fails on one process, every process raises, none is
    left waiting: the failing one re-raises its error with ``where`` as a note (e.g. the rows it handled), the
    others a ``RuntimeError`` naming it (``what failed on process i: ...``). One process: ``work()`` as it is.
    """
    if state.num_processes <= 1:
        return work()
    from accelerate.utils import gather_object

    error, result = None, None
    try:
        result = work()
    except Exception as err:  # every process must learn of it, or the others would wait at the barrier forever
        error = err
    failures = [f for f in gather_object([(state.process_index, _describe(error))]) if f[1] is not None]
    if error is not None:
        if where:
            _add_note(error, f"(process {state.process_index} of {state.num_processes} {where})")
        raise error
    if failures:
        raise RuntimeError(f"{what} failed on process {failures[0][0]}: {failures[0][1]}")
    return result


def broadcast_from_main(obj, state):
    """The main process's ``obj`` (small and picklable, e.g. a folder name) on every process."""
    if state.num_processes <= 1:
        return obj
    from accelerate.utils import broadcast_object_list

    box = [obj if state.is_main_process else None]
    broadcast_object_list(box, from_process=0)
    return box[0]


# -- metrics -------------------------------------------------------------------------------------------------------


def gather_weighted_means(values: dict[str, torch.Tensor], count: int, accelerator) -> dict[str, float]:
    """Exact means over all processes of per-process batch means ``values`` of ``count`` examples each.

    One all-gather of ``[count * v_1, ..., count * v_k, count]`` per call; equals the single-process mean over the
    concatenated batch even when processes hold batches of different sizes.

    Why not ``accelerator.gather_for_metrics``: it drops the samples Accelerate duplicated to even out the last
    evaluation batch by truncating the gathered tensor to the number of real *samples*, so it needs one row per
    sample; these values are per-process batch means (the losses return means), one row per process. The
    predictions and labels behind ``compute_metrics`` are gathered by the Trainer with ``gather_for_metrics``.
    """
    if not values:
        return {}
    names = list(values)
    device = accelerator.device
    local = torch.stack([values[n].detach().float().reshape(()).to(device) for n in names])
    packed = torch.cat([local * count, torch.tensor([float(count)], device=device)]).reshape(1, -1)
    total = accelerator.gather(packed).sum(0) if accelerator.num_processes > 1 else packed[0]
    means = (total[:-1] / total[-1].clamp_min(1.0)).tolist()  # one host sync for all the values
    return dict(zip(names, means))


# -- the online weak model ------------------------------------------------------------------------------------------

#: ZeRO-3 knobs that Transformers leaves as "auto" until it sees the trained model; sized from the weak model instead
_ZERO3_SIZED_KEYS = ("reduce_bucket_size", "stage3_prefetch_bucket_size", "stage3_param_persistence_threshold")


def _model_hidden_size(config) -> int | None:
    sizes = getattr(config, "hidden_sizes", None)
    if sizes:
        return int(max(sizes))
    size = getattr(config, "hidden_size", None)
    return int(size) if size else None


def weak_model_deepspeed_config(plugin_config: dict, hidden_size: int | None = None) -> dict:
    """The DeepSpeed config for an inference-only weak model, derived from the training run's plugin config.

    A deep copy of ``plugin_config`` without ``optimizer`` and ``scheduler`` (the weak model is never trained).
    Under ZeRO stage 3 the weak model is sharded too; the bucket sizes Transformers leaves as ``"auto"`` are sized
    from ``hidden_size`` like TRL does for its teachers (``h*h``, ``0.9*h*h``, ``10*h``) or dropped when it is
    unknown. Any other stage becomes stage 0 (a plain replicated copy on each device, no partitioning), with
    leftover ``"auto"`` ZeRO entries removed.
    """
    config = copy.deepcopy(dict(plugin_config))
    config.pop("optimizer", None)
    config.pop("scheduler", None)
    zero = dict(config.get("zero_optimization") or {})
    stage = int(zero.get("stage", 0) or 0)
    if stage == 3:
        sized = {}
        if hidden_size:
            sized = {
                "reduce_bucket_size": hidden_size * hidden_size,
                "stage3_prefetch_bucket_size": int(0.9 * hidden_size * hidden_size),
                "stage3_param_persistence_threshold": 10 * hidden_size,
            }
        for key in _ZERO3_SIZED_KEYS:
            if zero.get(key) == "auto":
                if key in sized:
                    zero[key] = sized[key]
                else:
                    zero.pop(key)
    else:
        zero = {k: v for k, v in zero.items() if v != "auto"}
        zero["stage"] = 0
    config["zero_optimization"] = zero
    return config


def prepare_weak_model(weak_model: torch.nn.Module, accelerator) -> torch.nn.Module:
    """Place ``weak_model`` for inference in the accelerator's setup; it is never wrapped for training.

    * DeepSpeed: ``deepspeed.initialize`` with :func:`weak_model_deepspeed_config` (sharded only under ZeRO-3).
    * everything else (one device, DDP, FSDP): ``accelerator.prepare_model(evaluation_mode=True)`` — mixed precision
      and device placement only. Under FSDP Accelerate would leave the model where it is, so placement is forced:
      the weak model is replicated on each device (it is the small one).
    """
    weak_model = unshard_model(weak_model)  # e.g. a weak supervisor just fine-tuned with FSDP2: replicated here
    weak_model.eval()
    weak_model.requires_grad_(False)
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    if plugin is not None:
        import deepspeed

        config = weak_model_deepspeed_config(plugin.deepspeed_config, _model_hidden_size(weak_model.config))
        engine, *_ = deepspeed.initialize(model=weak_model, config=config)
        engine.eval()
        return engine
    return accelerator.prepare_model(weak_model, device_placement=True, evaluation_mode=True)


# -- sharded training (FSDP2) ---------------------------------------------------------------------------------------


def enable_fsdp_on_cpu(accelerator, fsdp_plugin_args: dict | None) -> bool:
    """Turn on the FSDP that was asked for with several CPU processes, where Accelerate dropped it.

    FSDP is asked for by ``TrainingArguments(fsdp=True, fsdp_config=...)`` (``fsdp_plugin_args``: the Trainer's
    ``args.fsdp_plugin_args``) or by ``accelerate launch`` with an FSDP config file (``ACCELERATE_USE_FSDP=true`` and
    ``FSDP_*`` in the environment). accelerate 1.15's ``AcceleratorState`` honours either only for the accelerator
    types (MULTI_GPU, MULTI_XPU, ...): with several CPU processes it keeps MULTI_CPU without a word and the model is
    wrapped in DDP. FSDP2 (``torch.distributed.fsdp.fully_shard``) itself works on CPU with gloo, so this sets the
    state as Accelerate does for GPUs: ``distributed_type = FSDP``, the plugin (with the run's mixed precision) and
    the same ``distributed_type`` in ``PartialState``'s shared state (which every new ``AcceleratorState`` re-reads).
    Returns whether it changed anything; one process, a plugin already in place or no FSDP asked: nothing.
    """
    import os

    from accelerate import PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    state = accelerator.state
    from_launcher = os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"
    if not (fsdp_plugin_args or from_launcher) or getattr(state, "fsdp_plugin", None) is not None:
        return False
    if state.distributed_type != DistributedType.MULTI_CPU:
        return False
    plugin = FullyShardedDataParallelPlugin(**(fsdp_plugin_args or {}))  # no arguments: the FSDP_* variables
    if state.mixed_precision != "no":
        plugin.set_mixed_precision(state.mixed_precision)
    state.distributed_type = DistributedType.FSDP
    state.fsdp_plugin = plugin
    PartialState._shared_state["distributed_type"] = DistributedType.FSDP
    return True


def own_fsdp_plugin(accelerator) -> bool:
    """Give the trainer that owns ``accelerator`` its own copy of the process's FSDP plugin, as it was configured.

    Accelerate keeps one state per process and fits its plugin to the first model it prepares (the wrap classes, the
    wrap policy). A second trainer built without new ``TrainingArguments`` (a recipe's weak supervisor, then the
    student on the same arguments) inherits that state and fails ("Could not find the transformer layer class
    ConvNextStage in the model"). Each call swaps in a fresh shallow copy of the plugin as first configured (its
    fitted attributes are reassigned, never mutated in place). Returns whether there was a plugin.
    """
    state = accelerator.state
    plugin = getattr(state, "fsdp_plugin", None)
    if plugin is None:
        return False
    pristine = getattr(plugin, "_hf_w2s_pristine", plugin)
    own = copy.copy(pristine)
    own._hf_w2s_pristine = pristine
    state.fsdp_plugin = own
    return True


def unshard_model(model: torch.nn.Module) -> torch.nn.Module:
    """A plain copy, with the full weights on every process, of a model that FSDP2 sharded; others are returned as
    they are.

    A model trained with FSDP2 stays sharded (``fully_shard`` changes it in place): used for inference afterwards
    (labelling, an online weak supervisor), every forward would be a collective, so processes that run different
    numbers of batches would wait for each other forever. A collective itself: every process calls it.
    """
    if not torch.distributed.is_available():
        return model
    from torch.distributed.fsdp import FSDPModule
    from torch.distributed.tensor import DTensor

    if not any(isinstance(p, DTensor) for p in model.parameters()):
        return model

    plain_cls = next(c for c in type(model).__mro__ if not issubclass(c, FSDPModule))
    config = getattr(model, "config", None)
    if config is None:
        raise TypeError(f"cannot rebuild the sharded {plain_cls.__name__}: only transformers models (with a config) "
                        "are rebuilt from their FSDP2 shards")
    state = {k: (v.full_tensor() if isinstance(v, DTensor) else v).detach().clone()
             for k, v in model.state_dict().items()}
    plain = plain_cls(config)
    plain.load_state_dict(state, strict=True)
    return plain.to(next(iter(state.values())).device).train(model.training)


def _no_input_embeddings():
    return None


def accelerate_skips_absent_wrap_units() -> bool:
    """Whether Accelerate's FSDP2 wrap policy leaves out the ``_no_split_modules`` a model does not instantiate
    (accelerate >= 1.16) instead of raising "Could not find the transformer layer class" (1.15 and earlier): probed
    on a two-layer module, so hf_w2s adapts a model only where the installed Accelerate needs it."""
    from accelerate.utils import FullyShardedDataParallelPlugin
    from accelerate.utils.fsdp_utils import fsdp2_prepare_auto_wrap_policy

    probe = torch.nn.Sequential(torch.nn.Linear(1, 1))
    probe._no_split_modules = ["Linear", "AbsentLayerOfTheProbe"]
    plugin = FullyShardedDataParallelPlugin(fsdp_version=2, auto_wrap_policy="TRANSFORMER_BASED_WRAP")
    try:
        plugin.set_auto_wrap_policy(probe)
        fsdp2_prepare_auto_wrap_policy(plugin, probe)
    except ValueError:
        return False
    return True


def adapt_model_to_fsdp2(model: torch.nn.Module, fsdp_plugin) -> list[str]:
    """Let Accelerate's FSDP2 preparation shard a vision model; returns what was changed and why (empty: nothing).

    Accelerate's ``fsdp2_prepare_model`` makes the model's ``_no_split_modules`` the wrap units (unless
    ``transformer_layer_cls_to_wrap`` names others), then calls ``fully_shard(model.get_input_embeddings())`` on its
    own. Three vision cases break there, each fixed on this model *instance* only (the class and what
    ``save_pretrained`` writes stay unchanged):

    * a model without one of its class's ``_no_split_modules`` (the linear weak supervisor, a ConvNeXt without
      blocks: "Could not find the transformer layer class ConvNextLayer" from accelerate <= 1.15): the list keeps
      the classes present; left alone where Accelerate already does so (:func:`accelerate_skips_absent_wrap_units`);
    * ResNet, ConvNeXt, ...: ``get_input_embeddings()`` raises ``NotImplementedError`` (no embedding layer);
    * ViT: the patch embedding lies inside ``ViTEmbeddings``, itself a wrap unit, so its parameters are DTensors
      already and the second ``fully_shard`` fails (``TypeError: Invariant encountered: value was None``).

    In the last two cases ``get_input_embeddings`` returns ``None`` (Accelerate's own "no input embeddings"): the
    parameters are sharded with their wrap unit or the root.
    """
    from accelerate.utils.fsdp_utils import fsdp2_prepare_auto_wrap_policy

    changes = []
    declared = getattr(model, "_no_split_modules", None) or []
    present = {type(m).__name__ for m in model.modules()}
    if (fsdp_plugin.transformer_cls_names_to_wrap is None and any(c not in present for c in declared)
            and not accelerate_skips_absent_wrap_units()):
        model._no_split_modules = [c for c in declared if c in present]
        changes.append(f"wrap units {model._no_split_modules} (the model has no {sorted(set(declared) - present)})")
    try:
        embed = model.get_input_embeddings()
    except NotImplementedError:
        changes.append(f"no input-embedding unit: {type(model).__name__} has none (get_input_embeddings raises "
                       "NotImplementedError)")
        model.get_input_embeddings = _no_input_embeddings
        return changes
    if embed is None:
        return changes
    fsdp_plugin.set_auto_wrap_policy(model)  # idempotent; Accelerate calls it again when it prepares the model
    policy = fsdp2_prepare_auto_wrap_policy(fsdp_plugin, model)
    path = {id(m): n for n, m in model.named_modules()}.get(id(embed), "")
    parents = [model.get_submodule(path.rsplit(".", i)[0]) for i in range(1, path.count(".") + 1)]
    wrapped = [p for p in parents if policy is not None and policy(p)]
    if wrapped:
        changes.append(f"no input-embedding unit: {path!r} lies inside the FSDP unit {type(wrapped[0]).__name__}, "
                       "which shards it already")
        model.get_input_embeddings = _no_input_embeddings
    return changes
