import pytest

from supervisors import Child, InvalidChildSpec, Supervisor, check_child_specs


def child(id="c", **kw):
    return Child(id, "examples/components/echo.wat", **kw)


def test_specs_are_frozen_values():
    spec = child()
    with pytest.raises(AttributeError):
        spec.id = "other"
    assert child() == child()


@pytest.mark.parametrize("kwargs, field", [
    ({"restart": "sometimes"}, "restart"),
    ({"shutdown": -1}, "shutdown"),
    ({"shutdown": "later"}, "shutdown"),
    ({"mailbox": "lose"}, "mailbox"),
    ({"mailbox_capacity": 0}, "mailbox_capacity"),
])
def test_bad_child_fields_are_named(kwargs, field):
    with pytest.raises(InvalidChildSpec) as info:
        child(**kwargs)
    assert info.value.field == field
    assert repr(next(iter(kwargs.values()))) in str(info.value)


def test_empty_id():
    with pytest.raises(InvalidChildSpec, match="id"):
        child(id="")


@pytest.mark.parametrize("kwargs, field", [
    ({"strategy": "all_for_none"}, "strategy"),
    ({"max_restarts": -1}, "max_restarts"),
    ({"within": 0}, "within"),
    ({"children": [child("a"), child("a")]}, "children"),
    ({"children": ["not a spec"]}, "children"),
    ({"strategy": "simple_one_for_one", "children": []}, "children"),
    ({"strategy": "simple_one_for_one", "children": [child(name="n")]}, "children"),
])
def test_bad_supervisor_fields_are_named(kwargs, field):
    with pytest.raises(InvalidChildSpec) as info:
        Supervisor("sup", **kwargs)
    assert info.value.field == field and info.value.spec_id == "sup"


def test_duplicate_id_message():
    with pytest.raises(InvalidChildSpec, match="duplicate child id"):
        Supervisor("sup", children=[child("a"), child("a")])


def test_trees_nest_to_any_depth():
    tree = Supervisor("l0", children=[Supervisor("l1", children=[Supervisor("l2", children=[child("leaf")])])])
    assert tree.children[0].children[0].children[0].id == "leaf"


def test_check_child_specs_rejects_a_name_used_twice():
    with pytest.raises(InvalidChildSpec, match="used twice"):
        check_child_specs([child("a", name="x"), Supervisor("s", children=[child("b", name="x")])])


def test_defaults_follow_otp():
    sup = Supervisor("s")
    assert (sup.strategy, sup.max_restarts, sup.within, sup.shutdown) == ("one_for_one", 3, 5.0, "infinity")
    c = child()
    assert (c.restart, c.shutdown, c.mailbox) == ("permanent", 5.0, "keep")
