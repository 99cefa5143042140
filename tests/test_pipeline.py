"""Device-independent parts of the GPU paths, and the artifact's folder names."""
from __future__ import annotations

from pathlib import Path

import torch

from pipeline import channels_last, model_dir, prune_prefix


def test_channels_last_only_for_image_batches_on_cuda() -> None:
    images, rows = torch.zeros(2, 3, 8, 8), torch.zeros(2, 600)
    assert channels_last(torch.device("cuda:0"), images)
    assert not channels_last(torch.device("cuda:0"), rows)
    assert not channels_last(torch.device("cpu"), images)


def test_artifact_folder_names() -> None:
    assert prune_prefix("l1unstructure", 0.7) == "l1unstructure_0.7"
    assert prune_prefix("slim", 0.5, "ppb", 4) == "slim_0.5_ppb_4.0"  # defend_arg as the artifact's float
    root = Path("result/x")
    assert model_dir(root, None, None) == root / "victim_model"
    assert model_dir(root, None, 2) == root / "shadow_model_2"
    assert model_dir(root, "l1unstructure_0.7", None) == root / "l1unstructure_0.7_model"
    assert model_dir(root, "l1unstructure_0.7", 0) == root / "shadow_l1unstructure_0.7_model_0"
