"""The typed model settings (folder names of the artifact) and the device-independent GPU placement rule."""
from __future__ import annotations

from pathlib import Path

import torch

from core.setting import AttackSetting, ModelSetting
from experiment import channels_last


def test_channels_last_only_for_image_batches_on_cuda() -> None:
    images, rows = torch.zeros(2, 3, 8, 8), torch.zeros(2, 600)
    assert channels_last(torch.device("cuda:0"), images)
    assert not channels_last(torch.device("cuda:0"), rows)
    assert not channels_last(torch.device("cpu"), images)


def test_artifact_folder_names() -> None:
    root = Path("result/x")
    original = ModelSetting.original()
    assert ModelSetting("l1unstructure", 0.7).prefix == "l1unstructure_0.7"
    assert ModelSetting("slim", 0.5, "ppb", 4).prefix == "slim_0.5_ppb_4.0"  # defend_arg as the artifact's float
    assert original.folder(root, None) == root / "victim_model"
    assert original.folder(root, 2) == root / "shadow_model_2"
    assert ModelSetting("l1unstructure", 0.7).folder(root, None) == root / "l1unstructure_0.7_model"
    assert ModelSetting("l1unstructure", 0.7).folder(root, 0) == root / "shadow_l1unstructure_0.7_model_0"


def test_basic_and_capitalised_defenses_name_the_undefended_folder() -> None:
    # `--defend basic` once retrained the undefended models into l1unstructure_0.6_basic_4.0_model/
    plain = ModelSetting("l1unstructure", 0.6)
    assert ModelSetting("l1unstructure", 0.6, "basic", 4.0) == plain
    assert ModelSetting("l1unstructure", 0.6, "DP", 0.1).prefix == "l1unstructure_0.6_dp_0.1"


def test_flags_name_the_same_model() -> None:
    m = ModelSetting("slim", 0.5, "dpsgd", 1.0)
    assert m.flags() == "--pruner_name slim --prune_sparsity 0.5 --defend dpsgd --defend_arg 1"
    assert m.make_script() == "prune.py" and ModelSetting.original().make_script() == "pretrain.py"
    assert m.undefended() == ModelSetting("slim", 0.5)


def test_attack_setting_names() -> None:
    victim = ModelSetting("l1unstructure", 0.6, "ppb", 4.0)
    assert AttackSetting.of(ModelSetting.original()).name == "original"
    plain = AttackSetting.of(victim)
    assert plain.name == "l1unstructure_0.6_ppb_4.0" and plain.shadows == ModelSetting("l1unstructure", 0.6)
    adaptive = AttackSetting.of(victim, adaptive=True)
    assert adaptive.name == "l1unstructure_0.6_ppb_4.0_adaptive" and adaptive.shadows == victim
    unknown = AttackSetting.of(ModelSetting("l1unstructure", 0.6), shadow_sparsity=0.9)
    assert unknown.name == "l1unstructure_0.6_shadow_l1unstructure_0.9" and unknown.unknown_shadows


def test_sparsity_zero_is_the_unpruned_model_on_either_side() -> None:
    # Figs 12-13's sparsity-0 row and column: an original victim with pruned shadows, a pruned victim with the
    # original shadows; each has its own output name, apart from the known-setting runs.
    pruned = ModelSetting("l1unstructure", 0.6)
    orig_victim = AttackSetting.of(ModelSetting.original(), shadow_pruner_name="l1unstructure", shadow_sparsity=0.6)
    assert orig_victim.shadows == pruned and orig_victim.unknown_shadows
    assert orig_victim.name == "original_shadow_l1unstructure_0.6"
    orig_shadows = AttackSetting.of(pruned, shadow_sparsity=0)
    assert orig_shadows.shadows == ModelSetting.original() and orig_shadows.unknown_shadows
    assert orig_shadows.name == "l1unstructure_0.6_shadow_original"
    assert AttackSetting.of(ModelSetting.original(), shadow_sparsity=0).name == "original"
    assert AttackSetting.of(pruned, shadow_sparsity=0.6, shadow_pruner_name="l1unstructure").name == "l1unstructure_0.6"


def test_dp_options_and_modes_name_their_folders_and_flags() -> None:
    """Non-default DP optimiser settings and the artifact mode join the folder name (so they never share a
    folder with the defaults); a default, given or not, does not; `flags()` names the same model again."""
    from experiment.cli import add_setting_flags, base_parser, setting_of

    parser = base_parser("test")
    add_setting_flags(parser)

    def setting(*flags: str) -> ModelSetting:
        return setting_of(parser.parse_args(["c.json", "--prune_sparsity", "0.6", *flags]))

    assert setting("--defend", "dp").prefix == "l1unstructure_0.6_dp_0.1"
    assert setting("--defend", "dp", "--dp_lr", "0.005", "--dp_momentum", "0.9").prefix == "l1unstructure_0.6_dp_0.1"
    assert setting("--defend", "dp", "--defense_mode", "artifact").prefix == "l1unstructure_0.6_dp_0.1_artifact"
    assert setting("--defend", "adv", "--defense_mode", "artifact").prefix == "l1unstructure_0.6_adv_4.0_artifact"
    tuned = setting("--defend", "dpsgd", "--dp_lr", "0.01", "--dp_momentum", "0", "--dp_steps_per_epoch", "20")
    assert tuned.prefix == "l1unstructure_0.6_dpsgd_1.0_lr0.01-mom0-steps20"
    assert setting("--defend", "dpsgd", "--dp_accountant", "prv").prefix == "l1unstructure_0.6_dpsgd_1.0"
    for model in (tuned, setting("--defend", "dp", "--defense_mode", "artifact")):
        assert setting(*model.flags().split()[4:]) == model  # the flags after pruner and sparsity
    assert "--defense_mode artifact" in setting("--defend", "dp", "--defense_mode", "artifact").flags()
