"""The world training path end to end at toy size: oracle examples -> tokenizer -> a few steps -> saved
checkpoints that transformers loads and that answer in the trained format's vocabulary."""

from __future__ import annotations

import json

from got_data.world.training import GROUNDING_PHASE, RoleTraining, WorldTrainingConfig, train_world_models
from got_data.world.vision_phase import VisionPhase


def test_a_few_steps_make_loadable_checkpoints_and_a_report(ray_session, tmp_path):
    from transformers import AutoTokenizer, Qwen2ForCausalLM, Qwen2VLForConditionalGeneration

    config = WorldTrainingConfig(
        # every set at toy size (the recipe's repeat, verify, combined and fields sets are thousands of scenes)
        counts={"t2i": 4, "edit": 3, "multiturn": 2}, grounding_scenes=3, vocab_size=700,
        repeat_scenes=2, grounding_repeat_scenes=2, verify_counts={"t2i": 2, "edit": 2}, combined_count=2,
        fields_counts={"edit": 2, "multiturn": 1},
        vision=VisionPhase(steps=2, batch_size=2, warmup_steps=1, held_out=4),
        vlm=RoleTraining(hidden_size=64, layers=2, intermediate_size=64, steps=3, batch_size=2, warmup_steps=1,
                         vision_embed_dim=64, vision_depth=1, grounding_steps=2, grounding_batch_size=2,
                         attention_weight=1.0, attention_layers=(1,)),
        llm=RoleTraining(hidden_size=64, layers=1, intermediate_size=64, steps=3, batch_size=2, warmup_steps=1),
    )
    report = train_world_models(tmp_path / "models", config)
    assert report["examples"]["vlm"] > 10 and report["examples"]["llm"] > 5
    assert report["examples"][GROUNDING_PHASE] >= 3 and set(report["grounding_phase"]) == {"ground"}
    assert report["vision_phase"]["final_loss"] > 0 and 0 <= report["vision_phase"]["color"] <= 1
    saved = json.loads((tmp_path / "models/training.json").read_text())
    assert saved["vlm"]["steps"] == 3
    assert set(saved["vlm"]["final_loss"]) <= {"recaption", "ground", "describe", "localize", "crop_describe"}
    vlm = Qwen2VLForConditionalGeneration.from_pretrained(tmp_path / "models/vlm")
    assert vlm.config.text_config.rope_parameters["mrope_section"] == list(config.vlm.mrope_section)
    Qwen2ForCausalLM.from_pretrained(tmp_path / "models/llm")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "models/vlm")
    assert tokenizer.tokenize("(123,45)")[1:4] == ["1", "2", "3"]  # digits one by one, as Qwen writes them
