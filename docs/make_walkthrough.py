"""Write docs/walkthrough.ipynb (outputs stripped) from the cells below; --render executes it into docs/walkthrough.html.

    python docs/make_walkthrough.py            # the notebook, no outputs (what git holds)
    python docs/make_walkthrough.py --render   # also run it (a few minutes on a CPU) and write the rendered copy
"""

from __future__ import annotations

import argparse
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
NOTEBOOK = HERE / "walkthrough.ipynb"
RENDERED = HERE / "walkthrough.html"

CELLS = [
    ("md", """# perspective: a walkthrough

`perspective` fine-tunes a torchvision backbone to predict **continuous scores** from photos (how well
each car part is seen, in [0, 1]) or class labels. This notebook explains the design in a few
paragraphs, then runs it for real: synthetic data, a short training, its curves, an evaluation,
predictions for a folder with calibrated intervals, and where a score comes from.

**The model** is a registry backbone (resnet18 here) with its classifier replaced by a small head: one
output per target, squashed by a sigmoid when every training target lies in [0, 1]. The loss is MSE
by default (`--loss huber`, `mae`, `weighted_mse`); a classifier uses cross-entropy.

**The label-aware flip.** A mirrored photo shows the car's left side as its right, so a horizontal
flip must also swap every `*_left` target with its `*_right` twin. Augmentation does that, and so
does test-time augmentation (`--tta`).

**The prediction path.** `infer.py`, `evaluate.py`, the server and the end of training all go through
one `Predictor`: images decoded in parallel at the JPEG scale the model needs, handed over as uint8,
normalised a batch at a time, run in channels_last with bf16 where the hardware has it."""),
    ("code", """import os
import tempfile
from pathlib import Path

import pandas as pd
from IPython.display import Image, display

# Small settings, so the whole notebook runs in a few minutes on a CPU (the test suite runs it tinier still).
TINY = os.environ.get("WALKTHROUGH_TINY") == "1"
COUNT, EPOCHS, SIZE = (48, 2, 64) if TINY else (400, 8, 96)
WORK = Path(tempfile.mkdtemp(prefix="walkthrough-"))
print(f"{COUNT} images, {EPOCHS} epochs at {SIZE} px in {WORK}")"""),
    ("md", "## 1. Data\n\nThe built-in generator renders car photos and knows each part's visible share: a labelled set, offline."),
    ("code", """from perspective.synth import generate

data = generate(WORK / "data", COUNT, seed=7, progress=False)
labels = pd.read_csv(data / "labels.csv")
labels.head()"""),
    ("code", """from perspective.models import flip_permutation

names = [c for c in labels.columns if c.startswith("perspective_score_")]
swap = flip_permutation(names)
{names[i]: names[j] for i, j in enumerate(swap) if i != j}  # what a mirror swaps"""),
    ("md", "## 2. Training\n\nThe same function `perspective train` calls. From random weights here (no download)."),
    ("code", """from perspective.training import TrainConfig, train

result = train(TrainConfig(data=str(data), weights="none", image_size=SIZE, max_epochs=EPOCHS, batch_size=16,
                           logger="csv", checkpoints_location=str(WORK / "checkpoints"),
                           logs_location=str(WORK / "logs"), quiet=True))
print("best checkpoint:", result.best_checkpoint)
result.test_table"""),
    ("md", "The validation curves, from the run's metrics CSV (one row per epoch):"),
    ("code", """curves = pd.read_csv(next((WORK / "logs").rglob("metrics.csv")))
curves.plot(x="epoch", y=["train_loss_epoch", "val_loss"], marker="o", title="loss per epoch");"""),
    ("md", "## 3. Evaluation\n\nThe run already evaluated its best checkpoint on its test split; the report's plots:"),
    ("code", """report = Path(result.run_dir) / "test_report"
display(Image(filename=str(report / "scatter.png"), width=800))"""),
    ("md", "## 4. Prediction, with intervals\n\nEach checkpoint carries a conformal calibration from its validation split: `interval=0.9` adds a band that holds the true score 90% of the time."),
    ("code", """from perspective.models import load_checkpoint
from perspective.prediction import Predictor

model = load_checkpoint(result.best_checkpoint)
predictor = Predictor(model, "cpu", interval=0.9)
rows = pd.DataFrame(predictor.predict_paths(sorted(map(str, (data / "images").iterdir()))[:8], progress=False))
rows[["path", names[0], f"{names[0]}_low", f"{names[0]}_high"]].assign(path=lambda f: f["path"].map(lambda p: Path(p).name))"""),
    ("md", "## 5. Where a score comes from\n\nGrad-CAM of each output over one photo (`infer.py --explain DIR` writes these for every image)."),
    ("code", """from perspective.evaluation.explain import Explainer, explain_image

png = explain_image(Explainer(load_checkpoint(result.best_checkpoint)), sorted((data / "images").iterdir())[0])
display(Image(data=png, width=900))"""),
    ("md", """## From here

- `perspective train -d ./my_photos` with ImageNet weights (the default) for real data;
- `perspective evaluate -c checkpoints/resnet18/<run>/last.ckpt -d ./held_out --interval 0.9` for metrics, plots and coverage;
- `perspective serve -c checkpoints/resnet18/<run>/last.ckpt` and open http://127.0.0.1:8000/ for the demo page;
- `perspective audit -d ./my_photos` to find labels that look wrong."""),
]


def notebook() -> nbformat.NotebookNode:
    cells = [new_markdown_cell(text) if kind == "md" else new_code_cell(text) for kind, text in CELLS]
    return new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                              "language": "python"}})


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--render", action="store_true", help="also execute it and write docs/walkthrough.html")
    args = p.parse_args()
    nbformat.write(notebook(), NOTEBOOK)
    if args.render:
        from nbclient import NotebookClient
        from nbconvert import HTMLExporter

        executed = notebook()
        NotebookClient(executed, timeout=1200, kernel_name="python3", resources={"metadata": {"path": str(HERE.parent)}}).execute()
        RENDERED.write_text(HTMLExporter().from_notebook_node(executed)[0], encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
