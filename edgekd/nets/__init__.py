"""Architecture registry: teachers and students."""
from edgekd.nets import quant, students, teachers  # noqa: F401  (registration)
from edgekd.nets.registry import NETS, NetSpec, count_parameters, create_net, register_net

__all__ = ["NETS", "NetSpec", "count_parameters", "create_net", "register_net"]
