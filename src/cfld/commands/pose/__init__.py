"""``cfld pose``: read, convert, flip, retarget, draw and render OpenPose-18 poses.

The group gathers the file tools (:mod:`.files`) and the detection in photos (:mod:`.detection`).
"""

from __future__ import annotations

import click

from .detection import detect
from .files import convert, draw, flip, render, retarget


@click.group("pose", commands=[convert, flip, retarget, draw, render, detect],
             context_settings={"help_option_names": ["-h", "--help"]})
def pose() -> None:
    """Read, convert, flip, retarget, draw and render OpenPose-18 (COCO-18) poses.

    \b
    Examples:
      cfld pose convert fasion-resize-annotation-test.csv \\
          --name fashion/WOMEN/Tees_Tanks/id_00005085/45_1_front.jpg -o front.json
      cfld pose draw front.json -o front.png --image photo.jpg
      cfld pose flip front.json -o mirrored.json
      cfld pose retarget photo_keypoints.json --frame 1080x720 --to 256x176 -o pose.json
      cfld pose render front.json --size 256x256 -o front.safetensors
      cfld pose detect photo.jpg -o pose.json --draw pose.png
      cfld pose detect photos/ -o poses/
    """
