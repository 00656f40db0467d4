"""Headless 12-view renderer of MVCNN (Su et al., ICCV 2015), as the greedy paper's ModelNet40 task uses it (§5).

Setup (MVCNN's ``render_views.m``, for shapes upright along +Z as ModelNet40's are): 12 cameras every 30° of
azimuth around the up axis, elevated 30°, pointing at the object's centre; azimuth measured like MATLAB's
``view(az, el)``, from the -Y axis counter-clockwise, so view 0 looks along +Y. The object is centred on its
bounding-box centre and scaled so its bounding sphere fills the frame (a 5% margin) in every view; perspective
camera at 3 radii. Gray flat shading with a headlight (a light at the camera): intensity = 0.2 + 0.8 |cos θ|, θ
between the face normal and the direction to the camera (abs: ModelNet40's faces are not consistently
oriented); black background, as the ``modelnet40_images_new_12x`` set the reference code trains on. 224×224,
4× multisampling.

Library: moderngl (OpenGL 3.3 through its ``glcontext`` EGL backend). It is maintained, ships manylinux wheels,
needs no display, and through libglvnd's EGL it runs on Mesa's llvmpipe on any CPU and on the NVIDIA driver's EGL
in a GPU container (with ``NVIDIA_DRIVER_CAPABILITIES`` including ``graphics``). System libraries: see
:data:`SYSTEM_PACKAGES`.
"""

from __future__ import annotations

import math

import numpy as np

from data_prep.common import PrepError

#: Debian packages providing headless EGL + Mesa's software OpenGL (llvmpipe) that moderngl needs.
SYSTEM_PACKAGES = ("libegl1", "libegl-mesa0", "libgl1", "libgl1-mesa-dri")

NUM_VIEWS = 12
AZIMUTHS = tuple(30.0 * k for k in range(NUM_VIEWS))
ELEVATION = 30.0
DISTANCE = 3.0  # camera distance in bounding-sphere radii
MARGIN = 1.05  # the bounding sphere spans 1/MARGIN of the frame
AMBIENT, DIFFUSE = 0.2, 0.8

_VERTEX_SHADER = """
#version 330
uniform mat4 mvp;
uniform mat4 mv;
in vec3 in_pos;
out vec3 v_pos;
void main() {
    v_pos = (mv * vec4(in_pos, 1.0)).xyz;
    gl_Position = mvp * vec4(in_pos, 1.0);
}
"""

# Flat shading without per-face normals: the screen-space derivatives of the view-space position span the face.
_FRAGMENT_SHADER = f"""
#version 330
in vec3 v_pos;
out vec4 color;
void main() {{
    vec3 n = normalize(cross(dFdx(v_pos), dFdy(v_pos)));
    float c = {AMBIENT} + {DIFFUSE} * abs(dot(n, normalize(-v_pos)));
    color = vec4(c, c, c, 1.0);
}}
"""


def recipe(size: int) -> dict:
    """Every rendering parameter, for the prep stage's recipe."""
    return {
        "views": NUM_VIEWS,
        "azimuths_deg": list(AZIMUTHS),
        "elevation_deg": ELEVATION,
        "up": "+z",
        "azimuth_origin": "-y, counter-clockwise (MATLAB view(az, el), as MVCNN render_views.m)",
        "size": size,
        "projection": f"perspective, camera at {DISTANCE} bounding-sphere radii, margin {MARGIN}",
        "shading": f"flat, headlight, gray = {AMBIENT} + {DIFFUSE}|cos|, black background, 4x MSAA",
        "centre": "bounding-box centre",
        "renderer": "moderngl/OpenGL 3.3 via EGL",
    }


def _look_at(eye: np.ndarray, up: np.ndarray) -> np.ndarray:
    """View matrix of a camera at ``eye`` looking at the origin."""
    f = -eye / np.linalg.norm(eye)
    s = np.cross(f, up)
    s /= np.linalg.norm(s)
    u = np.cross(s, f)
    m = np.eye(4)
    m[0, :3], m[1, :3], m[2, :3] = s, u, -f
    m[:3, 3] = -m[:3, :3] @ eye
    return m


def _perspective(fov_y: float, near: float, far: float) -> np.ndarray:
    t = 1.0 / math.tan(fov_y / 2)
    m = np.zeros((4, 4))
    m[0, 0] = m[1, 1] = t
    m[2, 2] = (far + near) / (near - far)
    m[2, 3] = 2 * far * near / (near - far)
    m[3, 2] = -1.0
    return m


def camera_matrices() -> list[tuple[np.ndarray, np.ndarray]]:
    """(model-view, model-view-projection) of the 12 cameras, for an object inside the unit sphere."""
    fov = 2 * math.asin(MARGIN / DISTANCE)
    proj = _perspective(fov, DISTANCE - 1.5, DISTANCE + 1.5)
    el = math.radians(ELEVATION)
    out = []
    for az_deg in AZIMUTHS:
        az = math.radians(az_deg)
        eye = DISTANCE * np.array([math.sin(az) * math.cos(el), -math.cos(az) * math.cos(el), math.sin(el)])
        mv = _look_at(eye, np.array([0.0, 0.0, 1.0]))
        out.append((mv, proj @ mv))
    return out


def normalize(vertices: np.ndarray) -> np.ndarray:
    """Centre on the bounding-box centre and scale into the unit sphere (float64 math, float32 result)."""
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    centred = vertices - (lo + hi) / 2
    radius = float(np.sqrt((centred**2).sum(axis=1).max()))
    if not np.isfinite(radius) or radius == 0.0:
        raise ValueError("the mesh has no extent (all vertices coincide)")
    return (centred / radius).astype(np.float32)


class ViewRenderer:
    """One offscreen OpenGL context; :meth:`render` gives the 12 views of a mesh as (12, size, size) uint8."""

    def __init__(self, size: int = 224, samples: int = 4):
        try:
            import moderngl
        except ImportError as e:  # pragma: no cover - pinned dependency
            raise PrepError(f"moderngl is not installed ({e}); run `make install`") from e
        try:
            self.ctx = moderngl.create_standalone_context(backend="egl")
        except Exception as e:
            raise PrepError(
                f"cannot open a headless OpenGL context through EGL ({str(e).splitlines()[0]}); install the "
                f"system libraries: `apt-get install {' '.join(SYSTEM_PACKAGES)}`, or use --from-images"
            ) from e
        ctx = self.ctx
        self.size = size
        self.program = ctx.program(vertex_shader=_VERTEX_SHADER, fragment_shader=_FRAGMENT_SHADER)
        self.msaa = ctx.framebuffer(
            color_attachments=[ctx.renderbuffer((size, size), 4, samples=samples)],
            depth_attachment=ctx.depth_renderbuffer((size, size), samples=samples),
        )
        self.resolved = ctx.framebuffer(color_attachments=[ctx.renderbuffer((size, size), 4)])
        self.cameras = [(mv.T.astype("f4").tobytes(), mvp.T.astype("f4").tobytes()) for mv, mvp in camera_matrices()]
        self.renderer_name = ctx.info.get("GL_RENDERER", "unknown")

    def render(self, vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
        """The 12 views of a mesh (any coordinates; normalized here), rows top to bottom."""
        import moderngl

        ctx = self.ctx
        vbo = ctx.buffer(normalize(vertices).tobytes())
        ibo = ctx.buffer(np.ascontiguousarray(triangles, dtype=np.uint32).tobytes())
        vao = ctx.vertex_array(self.program, [(vbo, "3f", "in_pos")], index_buffer=ibo, index_element_size=4)
        views = np.empty((NUM_VIEWS, self.size, self.size), dtype=np.uint8)
        try:
            ctx.enable(moderngl.DEPTH_TEST)
            for k, (mv, mvp) in enumerate(self.cameras):
                self.msaa.use()
                self.msaa.clear(0.0, 0.0, 0.0, 1.0, depth=1.0)
                self.program["mv"].write(mv)
                self.program["mvp"].write(mvp)
                vao.render(moderngl.TRIANGLES)
                ctx.copy_framebuffer(self.resolved, self.msaa)
                raw = self.resolved.read(components=1, alignment=1)
                views[k] = np.frombuffer(raw, dtype=np.uint8).reshape(self.size, self.size)[::-1]
        finally:
            vao.release()
            vbo.release()
            ibo.release()
        return views

    def release(self) -> None:
        self.ctx.release()
