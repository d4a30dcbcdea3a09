"""Supervision trees for airssys-actors, with Erlang/OTP's semantics.

Supervisors are processes on the node, built only on ``airssys_actors``' public API:
spawn with link, trapping exits, exit signals, named mailboxes kept across restarts.

    tree = Supervisor("root", strategy="one_for_one", children=[
        Child("counter", "examples/components/counter.wat", args={"start": 0}, name="counter"),
    ])
    root = await supervisors.start(node, tree)
"""

from ._ref import ChildInfo as ChildInfo
from ._ref import SupervisorRef as SupervisorRef
from ._ref import start as start
from ._server import SupervisorError as SupervisorError
from ._spec import Child as Child
from ._spec import InvalidChildSpec as InvalidChildSpec
from ._spec import Supervisor as Supervisor
from ._spec import check_child_specs as check_child_specs
from ._upgrade import ProcessUpgrade as ProcessUpgrade
from ._upgrade import UpgradeReport as UpgradeReport
from airssys_actors import UpgradeFailed as UpgradeFailed

__all__ = [
    "Child",
    "ChildInfo",
    "InvalidChildSpec",
    "ProcessUpgrade",
    "Supervisor",
    "SupervisorError",
    "SupervisorRef",
    "UpgradeFailed",
    "UpgradeReport",
    "check_child_specs",
    "start",
]
