"""Blender side: randomized warehouse scenes rendered into COCO datasets (never imports torch)."""
