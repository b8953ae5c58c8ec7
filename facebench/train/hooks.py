"""Hooks the training loop calls (TFace-style): progress bar, JSONL log, TensorBoard,
checkpoints and periodic verification. A hook overrides any of ``on_start``, ``after_step``,
``on_record`` (a log record someone emitted) and ``on_end``; the trainer is passed in."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from tqdm import tqdm

from facebench import schema
from facebench.fileio import append_text, write_text
from facebench.train.checkpoint import save_training_state

log = logging.getLogger(__name__)


class Hook:
    """Base hook: every method is a no-op."""

    def on_start(self, trainer) -> None:
        pass

    def after_step(self, trainer, info: dict) -> None:
        pass

    def on_record(self, trainer, record: dict) -> None:
        pass

    def on_end(self, trainer) -> None:
        pass


class ProgressHook(Hook):
    """tqdm bar over optimizer steps, showing the loss and images/s (main process only)."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.bar = None

    def on_start(self, trainer) -> None:
        self.bar = tqdm(
            total=trainer.total_steps,
            initial=trainer.step,
            unit="step",
            desc=trainer.recipe.name or "train",
            disable=not (self.enabled and trainer.ctx.is_main),
            dynamic_ncols=True,
        )

    def after_step(self, trainer, info: dict) -> None:
        self.bar.set_postfix(loss=f"{info['loss']:.4f}", img_s=f"{info['images_per_s']:.0f}")
        self.bar.update(1)

    def on_end(self, trainer) -> None:
        if self.bar is not None:
            self.bar.close()


class LogRecordsHook(Hook):
    """Every ``log_every`` steps: emit a record with the interval's mean loss, LR, speed, the
    learned threshold b/γ, gradient norm and skipped steps."""

    def __init__(self, every: int):
        self.every = every
        self._losses: list[float] = []
        self._images = 0
        self._seconds = 0.0
        self._skipped = 0

    def after_step(self, trainer, info: dict) -> None:
        self._losses.append(info["loss"])
        self._images += info["images"]
        self._seconds += info["seconds"]
        self._skipped += int(info["skipped"])
        if info["step"] % self.every and info["step"] != trainer.total_steps:
            return
        threshold = trainer.learned_threshold()
        record = {
            "step": info["step"],
            "epoch": round(info["epoch"], 4),
            "loss": sum(self._losses) / len(self._losses),
            "lr": info["lr"],
            "images_per_s": self._images / max(self._seconds, 1e-9),
            "grad_norm": info["grad_norm"],
            "skipped_steps": self._skipped,
            schema.LEARNED_THRESHOLD: threshold,
        }
        if trainer.scaler.enabled:
            record["loss_scale"] = trainer.scaler.scale
        trainer.emit(record)
        self._losses, self._images, self._seconds, self._skipped = [], 0, 0.0, 0


class JsonlHook(Hook):
    """Append every record as one JSON line to ``RUN_DIR/log.jsonl``; on resume, first drop
    the records an interrupted run wrote after the checkpoint it resumes from."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def on_start(self, trainer) -> None:
        if not trainer.ctx.is_main or not self.path.exists():
            return
        kept = [
            line
            for line in self.path.read_text().splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= trainer.step
        ]
        write_text(self.path, "".join(f"{line}\n" for line in kept))

    def on_record(self, trainer, record: dict) -> None:
        if trainer.ctx.is_main:
            append_text(self.path, json.dumps(record) + "\n")


class TensorBoardHook(Hook):
    """Numeric record fields as TensorBoard scalars under ``RUN_DIR/tb`` (``train/``, ``eval/``)."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = str(directory)
        self.writer = None

    def on_start(self, trainer) -> None:
        if trainer.ctx.is_main:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(self.directory, purge_step=trainer.step or None)

    def on_record(self, trainer, record: dict) -> None:
        if self.writer is None:
            return
        step = record["step"]
        prefix = f"eval/{record['bin']}" if "bin" in record else "train"
        for key, value in record.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "step":
                self.writer.add_scalar(f"{prefix}/{key}", value, step)

    def on_end(self, trainer) -> None:
        if self.writer is not None:
            self.writer.close()


class CheckpointHook(Hook):
    """Save every ``every`` steps (0: at the end of each epoch) and at the end of training."""

    def __init__(self, every: int):
        self.every = every

    def after_step(self, trainer, info: dict) -> None:
        every = self.every or trainer.steps_per_epoch
        if info["step"] % every == 0 and info["step"] != trainer.total_steps:
            save_training_state(trainer)

    def on_end(self, trainer) -> None:
        save_training_state(trainer)


class VerificationHook(Hook):
    """Every ``every`` steps (0: only at the end) and at the end: the verification report of the
    live backbone on each bin (:mod:`facebench.eval.verify_bins`, main process; the others
    wait). Each report's headline fields become a log record (and the trainer's ``metrics``);
    the last evaluation writes ``RUN_DIR/reports/`` exactly as ``facebench verify`` does."""

    def __init__(self, every: int, bins: list[str], batch_size: int):
        self.every = every
        self.paths = list(bins)
        self.batch_size = batch_size
        self._sources: list | None = None  # BinSource per bin, read once per run

    def after_step(self, trainer, info: dict) -> None:
        if self.every and info["step"] % self.every == 0 and info["step"] != trainer.total_steps:
            self.evaluate(trainer)

    def on_end(self, trainer) -> None:
        self.evaluate(trainer, write_reports=True)

    def evaluate(self, trainer, write_reports: bool = False) -> None:
        """Score every bin (collective: the main process scores, every process waits)."""
        if not self.paths:
            return
        if trainer.ctx.is_main:
            reports = self._reports(trainer, write_reports)
            trainer.metrics = {name: schema.headline(report) for name, report in reports.items()}
            for name, summary in trainer.metrics.items():
                trainer.emit({"step": trainer.step, "bin": name, **summary})
        trainer.ctx.barrier()

    def _reports(self, trainer, write_reports: bool) -> dict[str, dict]:
        from facebench.embed import TorchEmbedder
        from facebench.embed.sources import BinSource
        from facebench.eval.verify_bins import verification_report, verify_bins

        if self._sources is None:
            self._sources = [BinSource(str(path)) for path in self.paths]
        embedder = TorchEmbedder(
            trainer.backbone,
            trainer.convention,
            str(trainer.device),
            trainer.amp_dtype,
            name=trainer.recipe.model.backbone,
            channels_last=trainer.recipe.train.channels_last,
        )
        if write_reports:
            out = trainer.run_dir / "reports"
            return verify_bins(
                self._sources, out, embedder, batch_size=self.batch_size, progress=False
            )
        return {
            report["name"]: report
            for report in (
                verification_report(embedder, s, batch_size=self.batch_size, progress=False)
                for s in self._sources
            )
        }
