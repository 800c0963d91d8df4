from pipeline.common import run_cli
from pipeline.video.cli import main

run_cli(main)
