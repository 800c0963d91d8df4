"""Torch side of warehouse-synth: data, model, training, evaluation, video. Never imports bpy."""
