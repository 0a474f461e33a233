import math

import numpy as np
import pytest
import torch

from perspective.errors import UserError
from perspective.models import PerspectiveModel
from perspective.models.backbones import default_preprocessing
from perspective.models.module import regression_loss, warmup_cosine, weighted_mse
from perspective.models.transforms import eval_transform, flip_permutation, parse_flip_pairs, train_transform

NAMES = ["perspective_score_hood", "perspective_score_backdoor_left", "perspective_score_backdoor_right"]


def test_flip_swaps_left_and_right_targets():
    assert flip_permutation(NAMES) == [0, 2, 1]
    assert flip_permutation(["front", "front_left", "left", "front_right", "right"]) == [0, 3, 4, 1, 2]
    assert flip_permutation(["hood", "roof"]) == [0, 1]


def test_flip_is_disabled_for_an_unpaired_side_target():
    assert flip_permutation(["hood", "door_left"]) is None


def test_flip_pairs_none_turns_flips_off():
    assert parse_flip_pairs("none") == [] and parse_flip_pairs(None) is None
    assert flip_permutation(["0", "1", "2"], parse_flip_pairs("none")) is None


def test_explicit_flip_pairs():
    names = ["a", "b", "c"]
    assert flip_permutation(names, parse_flip_pairs("a:c")) == [2, 1, 0]
    with pytest.raises(UserError, match="'z'"):
        flip_permutation(names, parse_flip_pairs("a:z"))
    with pytest.raises(UserError):
        parse_flip_pairs("a-b")


def test_losses_against_hand_computed_values():
    pred = torch.tensor([[0.5, 0.0], [1.0, 0.2]])
    target = torch.tensor([[1.0, 0.0], [0.0, 0.4]])
    # errors: -0.5, 0, 1.0, -0.2
    assert regression_loss("mse")(pred, target).item() == pytest.approx((0.25 + 0 + 1 + 0.04) / 4)
    assert regression_loss("mae")(pred, target).item() == pytest.approx((0.5 + 0 + 1 + 0.2) / 4)
    # huber with delta 0.1: 0.5*e^2 when |e| <= 0.1, else 0.1*(|e| - 0.05)
    expected = (0.1 * 0.45 + 0 + 0.1 * 0.95 + 0.1 * 0.15) / 4
    assert regression_loss("huber", huber_delta=0.1)(pred, target).item() == pytest.approx(expected)
    # weighted mse: weights alpha + y = [1+a, a, a, 0.4+a]
    a = 1 / 30
    w = [1 + a, a, a, 0.4 + a]
    e2 = [0.25, 0.0, 1.0, 0.04]
    assert weighted_mse(pred, target).item() == pytest.approx(sum(wi * ei for wi, ei in zip(w, e2)) / sum(w))
    assert regression_loss("weighted_mse")(pred, target).item() == pytest.approx(weighted_mse(pred, target).item())
    with pytest.raises(UserError):
        regression_loss("cosine")


def test_weighted_mse_costs_more_on_high_scores():
    target = torch.tensor([0.9, 0.1])
    error_on_high = weighted_mse(torch.tensor([0.8, 0.1]), target)
    error_on_low = weighted_mse(torch.tensor([0.9, 0.0]), target)
    assert error_on_high > 5 * error_on_low  # the same 0.1 miss, weighted 0.93 against 0.13


def test_warmup_then_cosine_schedule():
    assert warmup_cosine(0, 10, 110) == pytest.approx(0.1)
    assert warmup_cosine(9, 10, 110) == pytest.approx(1.0)
    assert warmup_cosine(60, 10, 110) == pytest.approx(0.5)
    assert warmup_cosine(110, 10, 110) == pytest.approx(0.0)
    assert 0 < warmup_cosine(30, 10, 110) < 1 and not math.isnan(warmup_cosine(5, 0, 1))


def test_model_outputs_sigmoid_scores_and_class_probabilities():
    pre = {"image_size": 32, "resize_size": 36, "mean": [0.5] * 3, "std": [0.5] * 3, "interpolation": "bilinear"}
    reg = PerspectiveModel("resnet18", "regression", target_names=NAMES, weights="none", preprocessing=pre).eval()
    x = torch.randn(3, 3, 32, 32)
    scores = reg.predict_outputs(x)
    assert scores.shape == (3, 3) and (scores >= 0).all() and (scores <= 1).all()
    cls = PerspectiveModel("resnet18", "classification", class_names=["a", "b"], weights="none",
                           preprocessing=pre, label_smoothing=0.1).eval()
    probs = cls.predict_outputs(x)
    assert probs.shape == (3, 2) and torch.allclose(probs.sum(-1), torch.ones(3))
    assert cls.monitor == ("val_acc", "max") and reg.monitor == ("val_loss", "min")
    assert reg.hparams.target_names == NAMES and reg.hparams.preprocessing == pre


def test_model_rejects_bad_settings():
    with pytest.raises(UserError, match="--optimizer"):
        PerspectiveModel("resnet18", target_names=["a"], weights="none", optimizer="lbfgs")
    with pytest.raises(UserError, match="target names"):
        PerspectiveModel("resnet18", weights="none")


def test_full_resize_keeps_the_whole_photo_and_crop_cuts_the_sides():
    import numpy as np
    from PIL import Image

    pixels = np.zeros((240, 320, 3), dtype=np.uint8)
    pixels[:, :20] = 255  # a white band at the left edge
    image = Image.fromarray(pixels)
    full = eval_transform(default_preprocessing("resnet18", 64, "full"))(image)
    crop = eval_transform(default_preprocessing("resnet18", 64, "crop"))(image)
    assert full.shape == crop.shape == (3, 64, 64)
    assert full[0, :, 0].min() > 1.5  # white after normalisation survives at the left edge
    assert crop[0, :, 0].max() < 0  # the centre crop lost it
    for level in ("none", "light", "strong"):
        assert train_transform(default_preprocessing("resnet18", 64), level)(image).shape == (3, 64, 64)
    with pytest.raises(UserError):
        train_transform(default_preprocessing("resnet18", 64), "extreme")


@pytest.mark.parametrize("mode", ["full", "crop"])
def test_batched_normalisation_gives_what_the_per_image_transform_gives(mode):
    """The prediction path resizes per image and normalises per batch; training normalises per image."""
    import numpy as np
    from PIL import Image

    from perspective.models.transforms import eval_resize, normalise_batch

    pre = default_preprocessing("resnet18", 64, mode)
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)) for _ in range(3)]
    per_image = torch.stack([eval_transform(pre)(im) for im in images])
    resize = eval_resize(pre)
    batch = normalise_batch(torch.stack([torch.from_numpy(np.array(resize(im))) for im in images]), pre)
    assert batch.shape == (3, 3, 64, 64) and batch.dtype == torch.float32
    assert batch.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(batch, per_image)


@pytest.mark.parametrize("level", ["trivial", "randaugment"])
def test_the_policy_augment_levels_give_normalised_tensors_of_the_input_size(level):
    from PIL import Image

    pre = default_preprocessing("resnet18", 48)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8))
    outputs = [train_transform(pre, level)(image) for _ in range(4)]
    assert all(o.shape == (3, 48, 48) and o.dtype == torch.float32 for o in outputs)
    assert not all(torch.equal(outputs[0], o) for o in outputs[1:])  # random per call


def test_mixing_blends_images_and_labels_in_the_same_share():
    torch.manual_seed(0)
    classes = PerspectiveModel(task="classification", class_names=["a", "b", "c"], weights="none",
                               preprocessing=default_preprocessing("resnet18", 32).to_dict(), mix="mixup")
    x, y = torch.rand(8, 3, 32, 32), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    mixed_x, soft = classes._mixed(x, y)
    assert soft.shape == (8, 3) and torch.allclose(soft.sum(1), torch.ones(8))
    assert mixed_x.shape == x.shape and not torch.equal(mixed_x, x)

    scores = PerspectiveModel(task="regression", target_names=["s"], weights="none",
                              preprocessing=default_preprocessing("resnet18", 32).to_dict(), mix="cmixup")
    y = torch.tensor([[0.0], [0.01], [0.02], [0.9], [0.91], [0.92]])
    for _ in range(20):  # C-Mixup: partners have close scores, so mixed labels stay near their own group
        _, mixed_y = scores._mixed(torch.rand(6, 3, 32, 32), y)
        assert (mixed_y[:3] < 0.5).all() and (mixed_y[3:] > 0.5).all()
    with pytest.raises(UserError, match="cutmix is for classes"):
        PerspectiveModel(task="regression", target_names=["s"], weights="none", mix="cutmix")
    with pytest.raises(UserError, match="cmixup mixes photos with close scores"):
        PerspectiveModel(task="classification", class_names=["a", "b"], weights="none", mix="cmixup")
