import pytest

from clipprobe.core.errors import UsageError
from clipprobe.core.registry import Registry
from clipprobe.dashcam.captions import list_caption_policies
from clipprobe.data.task import get_task, list_tasks


def test_unknown_name_lists_what_exists():
    registry = Registry("widget")
    registry.register("b", 2)
    registry.register("a", 1)
    with pytest.raises(UsageError, match=r"^Unknown widget 'c'\. Available: a, b$"):
        registry.get("c")


def test_duplicate_registration_is_refused_unless_replacing():
    registry = Registry("widget")
    registry.register("a", 1)
    with pytest.raises(ValueError):
        registry.register("a", 2)
    registry.register("a", 3, replace=True)
    assert registry.get("a") == 3


def test_decorator_and_wildcards():
    registry = Registry("widget")

    @registry.register("red-one")
    def red():
        return "red"

    registry.register("blue-one", lambda: "blue")
    assert registry.names("red*") == ["red-one"]
    assert registry.get("red-one")() == "red"


def test_builtin_registries():
    assert {"traffic-light", "pedestrian", "car-colour"} <= set(list_tasks())
    assert get_task("traffic-light").classes == ("red", "amber", "green")
    assert {"salient", "descriptive"} <= set(list_caption_policies())
