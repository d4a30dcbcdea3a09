"""My first tree: a greeter (a Python actor) and a pool of three accumulators (acc.wat).

    my_first (one_for_one)
    |-- greeter   a Python actor, registered as "greeter": call it with a name
    `-- accs      (one_for_one) acc/1 .. acc/3, acc.wat v1, each starting at 0

Run it with ``airssys run examples/my_first/tree.py``, then e.g.
``airssys call acc/1 '["add", 5]'`` and
``airssys deploy acc examples/my_first/acc_v2.wat --version v2``.
"""

from pathlib import Path

from airssys_actors import Actor
from supervisors import Child, Supervisor

HERE = Path(__file__).resolve().parent


class Greeter(Actor):
    async def init(self, ctx, args):
        self.greeting = args["greeting"]

    async def handle(self, ctx, msg):
        return f"{self.greeting}, {msg.value}!"


tree = Supervisor("my_first", strategy="one_for_one", max_restarts=10, within=10, children=[
    Child("greeter", Greeter, args={"greeting": "hello"}, name="greeter"),
    Supervisor("accs", strategy="one_for_one", max_restarts=10, within=10, children=[
        Child(f"acc{i}", str(HERE / "acc.wat"), args={"start": 0}, name=f"acc/{i}", version="v1")
        for i in range(1, 4)
    ]),
])
