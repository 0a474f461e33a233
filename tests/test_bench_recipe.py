"""bench_recipe.py's cases: the same setting typed two ways is one case, and the commands the docs give
produce the cases of the rows already in ``benchmarks/results/recipe.jsonl``."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import bench_recipe, store  # noqa: E402

AVX2_ONLY = {"cpu": "AMD EPYC", "cores": 2, "isa": ["avx2"], "gpu": None}


def cases_of(argv: list[str], dataset: str, pretrain_on: str | None = None) -> list[dict]:
    args = bench_recipe.get_args_parser().parse_args(argv)
    return [case for _, _, _, case in bench_recipe.planned(dataset, args, pretrain_on)]


def test_flags_in_another_order_or_with_a_precision_are_the_same_case():
    one = bench_recipe.case_of("fashion", "toolkit", 15, 64, ["--precision", "32", "--fixmatch-with-val", "-s", "16"],
                               ["-e 18 --image-size 32"], None, True)
    other = bench_recipe.case_of("fashion", "toolkit", 15, 64, ["-s", "16", "--fixmatch-with-val", "--precision=bf16"],
                                 ["--image-size  32 -e 18"], None, True)
    assert one == other
    assert one["extra"] == "--fixmatch-with-val -s 16" and one["pretrain"] == ["-e 18 --image-size 32"]
    assert bench_recipe.flag_value(["--mix-alpha", "-0.5", "--precision=32"], "--precision") == "32"
    assert bench_recipe.flag_value(["--mix-alpha", "-0.5"], "--mix-alpha") == "-0.5"


def test_the_digits_command_measures_the_cases_of_the_stored_digits_rows():
    stored = [r["case"] for r in store.read("recipe") if r["commit"].startswith("ca3b25d") and r["case"]["dataset"] == "digits"]
    fresh = cases_of(["--datasets", "digits", "--extra=--flip-pairs none"], "digits")
    assert len(stored) == len(fresh) == 12
    assert sorted(map(json.dumps, stored)) == sorted(map(json.dumps, fresh))


def test_the_fashion_command_measures_the_case_of_the_stored_recipe_rows():
    """The stored rows fine-tuned on one machine from a backbone pretrained on another: the case names it."""
    argv = ["--datasets", "fashion", "--seeds", "0", "1", "2", "--epochs", "15", "--recipes", "toolkit",
            "--pretrain=-e 18 --image-size 32", "--unlabelled", "--extra=--precision 32 --fixmatch-with-val"]
    stored = {json.dumps(r["case"]) for r in store.read("recipe") if r["case"]["extra"] == "--fixmatch-with-val"}
    assert stored == {json.dumps(c) for c in cases_of(argv, "fashion", store.hardware(AVX2_ONLY))}
    assert {json.dumps(c) for c in cases_of(argv, "fashion")} != stored  # pretrained here: another case


def test_a_backbone_pretrained_elsewhere_is_named_and_its_stages_timed_together(tmp_path):
    data = tmp_path / "data" / "fashion"
    files = bench_recipe.stage_files(data, ["-e 18 --image-size 32", "-e 6 --blur-prob 1"], tmp_path, 64)
    assert len(set(files)) == 2
    assert bench_recipe.pretraining_record(files) == (0.0, None)  # nothing kept: it will run here
    files[0].parent.mkdir(parents=True)
    files[0].with_suffix(".json").write_text(json.dumps({"seconds": 4013.6, "machine": AVX2_ONLY}))
    files[1].with_suffix(".json").write_text(json.dumps({"seconds": 1498.6, "machine": store.machine()}))
    seconds, elsewhere = bench_recipe.pretraining_record(files)
    assert seconds == 5512.2
    assert elsewhere == (None if store.same_hardware(AVX2_ONLY, store.machine()) else "2-core AMD EPYC (AVX2 only)")


def test_resume_skips_only_what_this_machine_measured(tmp_path):
    results = tmp_path / "recipe.jsonl"
    case = bench_recipe.case_of("digits", "plain", 1, 64)
    here = store.record("recipe", case, {"seconds": 1.0}, seed=0, precision="32-true", path=results)
    store.record("recipe", case, {"seconds": 2.0}, seed=1, precision="32-true", path=results,
                 machine={"cpu": "another CPU", "cores": 2, "isa": [], "gpu": None})
    assert list(bench_recipe.resumable(results).values()) == [here]
