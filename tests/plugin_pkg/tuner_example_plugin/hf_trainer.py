"""A Hugging Face `transformers.Trainer`, driven by the service through a callback: the trial's
optimizer goes in through `optimizers=`, the trial's schedule advances with every optimizer
step, and each evaluation is reported with `ctx.report` (which may end the trial: pruned,
diverged or the budget spent). The model (a tiny BERT built from its config) and the data (a
synthetic token-counting task) are made here, so nothing is downloaded."""

from __future__ import annotations

import tempfile
from typing import Any

import torch

from tuner.trainable import TrialContext

VOCAB, LENGTH = 16, 12


def _data(seed: int, n: int) -> list[dict[str, torch.Tensor]]:
    """Sequences of tokens; the label says whether token 3 occurs more often than token 4."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (n, LENGTH), generator=g)
    labels = ((ids == 3).sum(1) > (ids == 4).sum(1)).long()
    return [{"input_ids": i, "attention_mask": torch.ones(LENGTH, dtype=torch.long),
             "labels": y} for i, y in zip(ids, labels, strict=True)]


class _Schedule:
    """What the Trainer expects of a scheduler; the trial's schedule moves in `ctx.step`."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer

    def step(self) -> None:
        pass

    def get_last_lr(self) -> list[float]:
        return [float(g["lr"]) for g in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {}


def hf_text_trainer(ctx: TrialContext) -> None:
    """`params`: hidden (the model's width)."""
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        PrinterCallback,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    hidden = int(ctx.params.get("hidden", 16))
    torch.manual_seed(ctx.seed)
    model = BertForSequenceClassification(BertConfig(
        vocab_size=VOCAB, hidden_size=hidden, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=2 * hidden, max_position_embeddings=LENGTH, num_labels=2))
    train, val = _data(ctx.split_seed, 400), _data(ctx.split_seed + 1, 100)  # the job's data
    opt = ctx.optimizer(model.parameters())
    ctx.schedule(opt, steps_per_epoch=(len(train) + ctx.batch_size - 1) // ctx.batch_size)

    class Report(TrainerCallback):  # type: ignore[misc]
        train_losses: list[float] = []

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None,
                   **kw: Any) -> None:
            if logs and "loss" in logs:  # every optimizer step (logging_steps=1)
                self.train_losses.append(float(logs["loss"]))
                ctx.step(float(logs["loss"]))

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            ctx.alive()  # progress in training ...

        def on_prediction_step(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            ctx.alive()  # ... and in evaluation, batch by batch

        def on_evaluate(self, args: Any, state: Any, control: Any, metrics: Any = None,
                        **kw: Any) -> None:
            losses, self.train_losses = self.train_losses, []
            ctx.report(metrics["eval_accuracy"], val_loss=metrics["eval_loss"],
                       train_loss=sum(losses) / max(1, len(losses)))

    def accuracy(pred: Any) -> dict[str, float]:
        return {"accuracy": float((pred.predictions.argmax(-1) == pred.label_ids).mean())}

    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, num_train_epochs=ctx.epochs_budget, seed=ctx.seed,
            per_device_train_batch_size=ctx.batch_size, per_device_eval_batch_size=100,
            eval_strategy="epoch", save_strategy="no", logging_strategy="steps",
            logging_steps=1, report_to="none", disable_tqdm=True,
            use_cpu=ctx.device.type == "cpu", bf16=ctx.precision == "bf16")
        trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=val,
                          optimizers=(opt, _Schedule(opt)), compute_metrics=accuracy,
                          callbacks=[Report()])
        trainer.remove_callback(PrinterCallback)  # the service records every step
        trainer.train()


hf_text_trainer.features = {  # type: ignore[attr-defined]
    "kind": "classification", "n_classes": 2, "input_shape": [LENGTH], "n_train": 400,
    "dataset": "token counts (synthetic)"}
