"""The student a run hands over: ``output_dir/student``, the student run with the best validation figure, saved as a
plain ``transformers`` checkpoint with its processor, its model card and results, the fine-tuned weak supervisor
(``weak_model/``) and the runs' TensorBoard logs (``runs/``); a LoRA student also as its adapter (``adapter/``).

With ``push_to_hub`` the repo (and ``hub_revision``'s branch) is made before any compute; a config with one student
run lets its ``Trainer`` push at each save as ``hub_strategy`` says, and resumes from the checkpoint it pushed
(``resume_from_checkpoint last-checkpoint``); the finished student is pushed with its card at the end.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ..checkpoints import last_complete_checkpoint, resume_target
from ..files import atomic_write, staged_dir
from ..losses import LOSSES, knobs_of
from ..security import redact_obj
from ..trainer.student_modes import is_peft_model

__all__ = ["StudentOutput", "save_model", "resume_point", "STUDENT_DIR", "RESULTS_FILE"]

STUDENT_DIR = "student"
RESULTS_FILE = "w2s_results.json"


def _value(option) -> str:
    return str(getattr(option, "value", option))


def save_model(trainer, path, processor, base_model_name_or_path: str | None = None) -> dict | None:
    """A trained model as a plain transformers checkpoint with its processor (a LoRA student merged, its adapter in
    ``adapter/``; returns the LoRA settings then, else ``None``). Every process calls it (a sharded model is
    gathered)."""
    path = str(path)
    whole = getattr(trainer, "full_model", None)  # a cached-feature student: its head put back into the model
    if whole is not None:
        if trainer.args.should_save:
            whole.save_pretrained(path)
            processor.save_pretrained(path)
        return None
    if not is_peft_model(trainer.model):
        pushes, trainer.args.push_to_hub = trainer.args.push_to_hub, False  # a save of the student folder: not one
        try:  # of the run's own pushes (hub_strategy), which would upload its run folder (training_args.bin too)
            trainer.save_model(path)
        finally:
            trainer.args.push_to_hub = pushes
        if trainer.args.should_save:
            processor.save_pretrained(path)
        return None
    from ..lora import save_lora_student

    config = next(iter(trainer.model.peft_config.values()))
    info = {"r": config.r, "alpha": config.lora_alpha, "target_modules": sorted(config.target_modules),
            "modules_to_save": sorted(config.modules_to_save or [])}
    if trainer.args.should_save:
        save_lora_student(trainer.model, path, image_processor=processor,
                          base_model_name_or_path=base_model_name_or_path)
    return info


def resume_point(exp, run_dir: Path, student: bool = True):
    """Where a strong run resumes (``resume_from_checkpoint`` of the training arguments): ``true`` — the last
    complete checkpoint of its own folder, if it has one; a checkpoint folder — that one, for the one student run of
    a config that has one (the ceiling starts afresh)."""
    target = resume_target(exp.training.resume_from_checkpoint, hub=bool(exp.training.push_to_hub))
    if target is None:
        return None
    if target is True:
        return last_complete_checkpoint(run_dir)
    return target if student and exp.config.student_rows * len(exp.config.seeds) == 1 else None


class StudentOutput:
    """Keeps ``output_dir/student`` holding the best student so far (by validation figure), writes its card and
    results at the end, and pushes it."""

    def __init__(self, exp):
        self.exp = exp
        self.dir = exp.out / STUDENT_DIR
        self.repo_id = None
        self.resumed_from = None  # "<repo>/<checkpoint folder>" when the one student run resumed from the Hub
        self.one_run = exp.config.student_rows * len(exp.config.seeds) == 1

    # -- before any compute --------------------------------------------------------------------------------------

    def prepare(self) -> None:
        """``push_to_hub``: the login, the repo and the ``hub_revision`` branch are checked (and made) now; a
        checkpoint to resume from on the Hub is fetched now."""
        args = self.exp.training
        if not args.push_to_hub:
            return
        from ..hub import resolve_repo_id

        self.repo_id = resolve_repo_id(args.hub_model_id, str(self.exp.out), args.hub_token,
                                       private=args.hub_private_repo, revision=args.hub_revision)
        if self.one_run:
            self._hub_resume()

    def trainer_pushes(self) -> dict:
        """Training arguments that make the one student run's Trainer push at its saves (``hub_strategy``)."""
        args = self.exp.training
        if not (self.repo_id and self.one_run and _value(args.hub_strategy) != "end"):
            return {}
        return {"push_to_hub": True, "hub_model_id": self.repo_id}

    def student_run_dir(self) -> Path:
        """The folder of the one student run (a config of one row and one seed)."""
        exp = self.exp
        w, spec = exp.config.weak_supervisors[0], exp.config.losses[0]
        return exp.run_dir(w, spec, exp.config.seeds[0], exp.candidates(spec)[0])

    def _hub_resume(self) -> None:
        from ..hub import HUB_CHECKPOINT_FOLDERS, hub_checkpoint

        args = self.exp.training
        resume = args.resume_from_checkpoint
        run_dir = self.student_run_dir()
        if resume_target(resume, hub=True) is True:
            from_hub = last_complete_checkpoint(run_dir, warn=False) is None
        else:
            from_hub = resume == "last-checkpoint" and not os.path.isdir(str(resume))
        if not from_hub:
            return
        strategy = _value(args.hub_strategy)
        if strategy in HUB_CHECKPOINT_FOLDERS:  # the checkpoint is fetched into output_dir: claimed first
            self.exp.claim_output_dir()
        path = hub_checkpoint(self.repo_id, str(run_dir), strategy, revision=args.hub_revision,
                              token=args.hub_token) if strategy in HUB_CHECKPOINT_FOLDERS else None
        if path is None:
            raise ValueError(f"resume_from_checkpoint={resume}: {self.repo_id} holds no checkpoint pushed with "
                             f"hub_strategy checkpoint or all_checkpoints (hub_strategy is {strategy}).")
        args.resume_from_checkpoint = path
        folder = HUB_CHECKPOINT_FOLDERS[strategy] if "*" not in HUB_CHECKPOINT_FOLDERS[strategy] else \
            os.path.basename(path)  # the folder on the Hub: last-checkpoint, or checkpoint-N
        self.resumed_from = f"{self.repo_id}/{folder}"

    # -- while the students train --------------------------------------------------------------------------------

    def _saved(self) -> dict | None:
        try:
            return json.loads((self.dir / RESULTS_FILE).read_text())
        except (OSError, ValueError):
            return None

    def consider(self, record: dict, trainer, processor, w, spec) -> None:
        """Save this student run into ``student/`` if its validation figure is the best of the config so far."""
        metric = self.exp.config.selection_metric
        value = record.get(f"validation_{metric}")
        sign = -1 if metric == "loss" else 1
        best = [r.get(f"validation_{metric}") for r in self.exp.results() if r.get("kind") == "w2s"]
        best = [b for b in best if b is not None]
        if best and value is not None and sign * value <= max(sign * b for b in best):
            return
        from ..distributed import process_state

        is_main = process_state().is_main_process
        base = None if self.exp.model.is_tiny else self.exp.model.model_name_or_path
        if not is_main:  # it takes part in gathering a sharded model; the main process alone replaces student/ (two
            import tempfile  # processes swapping in their own folder would race, and the other's is empty)

            scratch = tempfile.mkdtemp(prefix="hf_w2s-student-")
            try:
                save_model(trainer, scratch, processor, base_model_name_or_path=base)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            return
        with staged_dir(self.dir, replace=True) as tmp:
            lora = save_model(trainer, tmp, processor, base_model_name_or_path=base)
            if is_main:
                if lora is not None and self.exp.model.is_tiny:  # a tiny base exists nowhere else: the run's
                    # initial student, built again (the trained model is merged in place by now)
                    self.exp.strong_model(record["seed"])[0].save_pretrained(os.path.join(tmp, "base_model"))
                trained = getattr(trainer, "full_model", None) or trainer.model
                card_info = {"key": record["key"], "weak": w.name, "loss": spec.label, "loss_name": spec.name,
                             "seed": record["seed"], "lora": lora, "architecture": _architecture(trained),
                             "knobs": _loss_settings(trainer.args), "hyperparameters": _hyper(trainer.args)}
                with atomic_write(Path(tmp) / RESULTS_FILE) as f:
                    json.dump(redact_obj(card_info), f, indent=2)

    # -- at the end -----------------------------------------------------------------------------------------------

    def finish(self, results: list[dict]) -> None:
        """The card, the results, the weak supervisor and the logs next to the saved student; then the push."""
        from ..distributed import process_state

        students = [r for r in results if r.get("kind") == "w2s"]
        saved = self._saved()
        if not students or not process_state().is_main_process:
            return
        if saved is None or saved.get("key") not in {r["key"] for r in students}:
            self.exp.log(f"notice: {self.dir} does not hold a student of this configuration (its best student was "
                         "trained by an earlier run without saving it); run again in a new output_dir to save it.")
            return
        record = next(r for r in students if r["key"] == saved["key"])
        from .card import write_student_card

        if self.resumed_from:
            saved["resumed_from"] = self.resumed_from
        summary = write_student_card(self.exp, self.dir, record, saved, results, self.repo_id)
        weak_dir = self.exp.supervisors.model_dir(record["weak"])
        if weak_dir is not None and weak_dir.exists():
            shutil.copytree(weak_dir, self.dir / "weak_model", dirs_exist_ok=True)
        if (self.exp.out / "logs").exists():
            shutil.copytree(self.exp.out / "logs", self.dir / "runs", dirs_exist_ok=True)
        if self.repo_id:
            from ..hub import push_student

            args = self.exp.training
            summary["repo_id"] = self.repo_id  # in the results that are pushed, too
            with atomic_write(self.dir / RESULTS_FILE) as f:
                json.dump(redact_obj({**saved, **summary}), f, indent=2)
            push_student(str(self.dir), self.repo_id, token=args.hub_token, private=args.hub_private_repo,
                         revision=args.hub_revision)
        self.summary = summary


def _architecture(model) -> str:
    return type(model.get_base_model() if hasattr(model, "get_base_model") else model).__name__


def _loss_settings(args) -> dict:
    """The loss weights and the knobs the chosen loss reads."""
    if not LOSSES[args.w2s_loss].uses_weak:
        return knobs_of(args.w2s_loss, args)
    return {"weak_loss_weight": args.weak_loss_weight, "gt_loss_weight": args.gt_loss_weight,
            **knobs_of(args.w2s_loss, args)}


def _hyper(args) -> dict:
    return {"learning_rate": args.learning_rate, "num_train_epochs": args.num_train_epochs,
            "max_steps": args.max_steps, "per_device_train_batch_size": args.per_device_train_batch_size,
            "gradient_accumulation_steps": args.gradient_accumulation_steps, "weight_decay": args.weight_decay,
            "lr_scheduler_type": _value(args.lr_scheduler_type), "warmup_steps": args.warmup_steps,
            "seed": args.seed, "student_mode": args.student_mode, "load_best_model_at_end":
            bool(args.load_best_model_at_end)}
