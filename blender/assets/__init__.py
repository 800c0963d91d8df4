"""Procedural props: loads and pallets, pallet jacks, pedestrians (library meshes), distractors."""
