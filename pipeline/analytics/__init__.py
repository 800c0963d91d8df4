"""Warehouse safety analytics on tracked video: floor positions in metres, zone / line /
proximity rules, events, overlay, and scores against a rendered clip's ground truth.

Torch-free and bpy-free (blender.clip writes a clip's true events with it).
Modules: calibration (pixels <-> floor metres), footprint (where a mask touches the floor),
rules_config (RULES.yaml), engine (rules -> events), events (records, events.csv), overlay,
video (one run's analytics), scoring (against truth), clip_truth (a clip's truth files),
oracle (`--checkpoint gt`).
"""
