"""A small shader-graph writer: nodes by type, inputs given as values or sockets.

    t = Tree(mat.node_tree, mat.node_tree.nodes["Principled BSDF"])
    n = t.noise(t.coord("Object"), scale=4.0, w=seed)
    t.out(base_color=t.mix(n, rgb_a, rgb_b), roughness=0.6)

Every family module builds its graph with these few calls, so the graphs read like the
recipe they are and sockets of Blender's multi-type nodes (Mix, Map Range) are picked right.
A family's graph is a node group whose inputs are the numbers of a plan Surface (`Num`s:
arithmetic on them adds math nodes), built once per job; each material is one group node.
"""

from __future__ import annotations

from collections.abc import Sequence

import bpy


def srgb_to_linear(rgb: Sequence[float]) -> tuple[float, float, float, float]:
    """Plan colours are sRGB; Blender's colour sockets are linear."""
    out = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb[:3]]
    return (*out, 1.0)


def _is_socket(v) -> bool:
    return isinstance(v, bpy.types.NodeSocket)


GROUP_PREFIX = "warehouse_synth_"


def job_group(name: str) -> tuple[bpy.types.ShaderNodeTree, bool]:
    """(node group GROUP_PREFIX + name, whether it was just made and still needs its nodes).
    Groups are kept for the job (fake user), so a frame's materials are one group node each."""
    full = GROUP_PREFIX + name
    group = bpy.data.node_groups.get(full)
    if group is not None:
        return group, False
    group = bpy.data.node_groups.new(full, "ShaderNodeTree")
    group.use_fake_user = True
    return group, True


class Num:
    """A float socket that does arithmetic: `0.7 - 0.2 * wear` adds two math nodes."""

    def __init__(self, tree: Tree, socket):
        self.tree, self.socket = tree, socket

    def _op(self, op: str, other, swap: bool = False) -> Num:
        a, b = (other, self) if swap else (self, other)
        return Num(self.tree, self.tree.math(op, a, b))

    def __add__(self, o):
        return self._op("ADD", o)

    def __radd__(self, o):
        return self._op("ADD", o, True)

    def __sub__(self, o):
        return self._op("SUBTRACT", o)

    def __rsub__(self, o):
        return self._op("SUBTRACT", o, True)

    def __mul__(self, o):
        return self._op("MULTIPLY", o)

    def __rmul__(self, o):
        return self._op("MULTIPLY", o, True)

    def __truediv__(self, o):
        return self._op("DIVIDE", o)

    def __rtruediv__(self, o):
        return self._op("DIVIDE", o, True)


class Tree:
    """A node tree (a material's or a group's), its Principled BSDF and helpers that return sockets."""

    def __init__(self, nt: bpy.types.NodeTree, bsdf: bpy.types.Node):
        self.nt, self.bsdf = nt, bsdf
        self._coords = None

    def node(self, kind: str, inputs: dict | None = None, **props) -> bpy.types.Node:
        n = self.nt.nodes.new(kind)
        for k, v in props.items():
            setattr(n, k, v)
        for name, v in (inputs or {}).items():
            self.set(n.inputs[name], v)
        return n

    def set(self, socket, v) -> None:
        if isinstance(v, Num):
            v = v.socket
        if _is_socket(v):
            self.nt.links.new(v, socket)
        elif isinstance(v, Sequence):
            socket.default_value = tuple(v) if len(v) == len(socket.default_value) else (*v, 1.0)
        else:
            socket.default_value = v

    def coord(self, kind: str = "Object"):
        """Texture coordinates: Object (metres in the object's frame), Normal (object space), UV."""
        if self._coords is None:
            self._coords = self.nt.nodes.new("ShaderNodeTexCoord")
        return self._coords.outputs[kind]

    def uv(self, name: str):
        return self.node("ShaderNodeUVMap", uv_map=name).outputs["UV"]

    def island_random(self):
        """0..1 per connected part of the mesh: every box a MeshBuilder adds is its own island."""
        return self.node("ShaderNodeNewGeometry").outputs["Random Per Island"]

    def math(self, op: str, a, b=0.0, clamp: bool = False):
        n = self.nt.nodes.new("ShaderNodeMath")
        n.operation, n.use_clamp = op, clamp
        self.set(n.inputs[0], a)
        self.set(n.inputs[1], b)
        return n.outputs[0]

    def vmath(self, op: str, a, b=(0.0, 0.0, 0.0)):
        n = self.nt.nodes.new("ShaderNodeVectorMath")
        n.operation = op
        self.set(n.inputs[0], a)
        self.set(n.inputs["Scale"] if op == "SCALE" else n.inputs[1], b)
        return n.outputs["Value" if op in ("DOT_PRODUCT", "LENGTH", "DISTANCE") else "Vector"]

    def xyz(self, vector):
        n = self.node("ShaderNodeSeparateXYZ", {"Vector": vector})
        return n.outputs["X"], n.outputs["Y"], n.outputs["Z"]

    def combine(self, x, y, z):
        return self.node("ShaderNodeCombineXYZ", {"X": x, "Y": y, "Z": z}).outputs["Vector"]

    def noise(self, vector, scale: float, detail: float = 2.0, roughness: float = 0.5,
              w: float = 0.0, distortion: float = 0.0, output: str = "Fac"):
        """3D Perlin noise shifted by the seed `w` (so two surfaces never share a pattern).
        3D with a shift, not 4D with W: 4D noise costs about twice as much per shading point."""
        n = self.node("ShaderNodeTexNoise", {"Scale": scale, "Detail": detail, "Roughness": roughness,
                                             "Distortion": distortion}, noise_dimensions="3D")
        self.set(n.inputs["Vector"], self.shift(vector, w))
        return n.outputs[output]

    def shift(self, vector, w):
        """`vector` moved by the seed `w` (a number or a Num) along a fixed skew direction."""
        if isinstance(w, Num):
            return self.vmath("ADD", vector, self.vmath("SCALE", (0.1, 0.07, 0.05), w))
        return self.vmath("ADD", vector, (0.1 * w, 0.07 * w, 0.05 * w)) if w else vector

    def white(self, value, w: float = 0.0):
        """A deterministic hash of `value` (and the seed `w`) in 0..1."""
        n = self.node("ShaderNodeTexWhiteNoise", {"Vector": (0, 0, 0)}, noise_dimensions="2D")
        self.set(n.inputs["Vector"], self.combine(value, w, 0.0))
        return n.outputs["Value"]

    def ramp(self, value, lo: float, hi: float, to_lo=0.0, to_hi=1.0):
        """Smooth step of `value` from lo..hi onto to_lo..to_hi (clamped)."""
        n = self.node("ShaderNodeMapRange", {"Value": value, "From Min": lo, "From Max": hi,
                                             "To Min": to_lo, "To Max": to_hi},
                      interpolation_type="SMOOTHSTEP", clamp=True)
        return n.outputs["Result"]

    def mix(self, fac, a, b, blend: str = "MIX"):
        """Colour a..b by fac (sRGB lists are converted to Blender's linear colours)."""
        n = self.node("ShaderNodeMix", data_type="RGBA", blend_type=blend, clamp_factor=True)
        self.set(n.inputs["Factor"], fac)
        for name, v in (("A", a), ("B", b)):
            self.set(n.inputs[name], v if _is_socket(v) or isinstance(v, Num) else srgb_to_linear(v))
        return n.outputs["Result"]

    def lerp(self, fac, a, b):
        """Float a..b by fac."""
        n = self.node("ShaderNodeMix", data_type="FLOAT", clamp_factor=True)
        self.set(n.inputs["Factor"], fac)
        self.set(n.inputs["A"], a)
        self.set(n.inputs["B"], b)
        return n.outputs["Result"]

    def bump(self, height, strength: float, distance: float = 0.01):
        n = self.node("ShaderNodeBump", {"Height": height, "Strength": strength, "Distance": distance})
        return n.outputs["Normal"]

    def out(self, **inputs) -> None:
        """Principled BSDF inputs by snake-case name: base_color, roughness, metallic, normal, ..."""
        for key, v in inputs.items():
            name = {"base_color": "Base Color", "specular": "Specular IOR Level", "coat": "Coat Weight",
                    "coat_roughness": "Coat Roughness", "coat_normal": "Coat Normal"}.get(
                        key, key.replace("_", " ").title())
            socket = self.bsdf.inputs[name]
            self.set(socket, srgb_to_linear(v) if name == "Base Color" and isinstance(v, Sequence) else v)
