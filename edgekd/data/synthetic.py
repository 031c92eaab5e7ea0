"""Built-in synthetic bright-field lymphocytes in LymphoMNIST's format.

64×64 grayscale uint8 images, labels 0 = B, 1 = T4, 2 = T8, fully determined by a seed.

Class signal lives in morphology, as in real bright-field lymphocyte images:
cell size, nucleus-to-cell ratio, chromatin texture (granularity and contrast) and
membrane roughness (microvilli). Every class feature overlaps between classes, and
cell size varies a lot within a class so that the nucleus/cell *ratio* rather than
either size alone carries the signal. Nuisance: focus blur, illumination gradient,
shot noise, position jitter, eccentricity, debris, exposure.

Optionally (``mislabel``, recipe key ``data.synthetic.label_noise``) a fraction of the
train/val labels is wrong, as with fluorescence-gated ground truth; test labels stay true.

Fine chromatin texture is only partly preserved when the image is downsampled to the
student's 48×48, which is one reason a larger teacher at 64×64 does better.
"""
from __future__ import annotations

import numpy as np

CLASS_NAMES = ["B", "T4", "T8"]
SIZE = 64

# Per-class means of the morphological features; spreads are shared (scaled by difficulty).
_CLASS_FEATURES = {
    #            nc_ratio  rough   grain_scale  chromatin  cell_radius
    0: np.array([0.74,     0.050,  0.9,         0.13,      11.0]),  # B
    1: np.array([0.66,     0.028,  1.5,         0.09,      10.6]),  # T4
    2: np.array([0.70,     0.020,  1.2,         0.07,      10.2]),  # T8
}
_SPREAD = np.array([0.055, 0.016, 0.35, 0.035, 1.6])
_FOCUS = (0.3, 1.4)  # focus blur sigma range (px at 64×64), scaled by min(1, difficulty)


def _gaussian_fft_filter(shape: tuple[int, int], sigma: np.ndarray) -> np.ndarray:
    """Frequency response of per-sample Gaussian blurs: (B, H, W//2+1)."""
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    f2 = (fy**2 + fx**2)[None]
    s = np.asarray(sigma, dtype=np.float64)[:, None, None]
    return np.exp(-2.0 * (np.pi**2) * f2 * s**2)


def _blur(img: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    spec = np.fft.rfft2(img)
    return np.fft.irfft2(spec * _gaussian_fft_filter(img.shape[1:], sigma), s=img.shape[1:])


def _render(labels: np.ndarray, rng: np.random.Generator, difficulty: float) -> np.ndarray:
    n = labels.shape[0]
    feats = np.stack([_CLASS_FEATURES[int(c)] for c in labels])
    feats = feats + rng.normal(size=feats.shape) * _SPREAD * difficulty
    nc_ratio = np.clip(feats[:, 0], 0.45, 0.9)
    rough = np.clip(feats[:, 1], 0.0, 0.12)
    grain = np.clip(feats[:, 2], 0.5, 3.0)
    chromatin = np.clip(feats[:, 3], 0.0, 0.3)
    radius = np.clip(feats[:, 4], 7.0, 15.5)

    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    yy = yy[None]
    xx = xx[None]
    cy = SIZE / 2 - 0.5 + rng.uniform(-4, 4, n)[:, None, None]
    cx = SIZE / 2 - 0.5 + rng.uniform(-4, 4, n)[:, None, None]
    dy, dx = yy - cy, xx - cx
    rho = np.hypot(dy, dx)
    theta = np.arctan2(dy, dx)

    # Cell outline: eccentric ellipse plus membrane ruffles (harmonics 7..13).
    ecc = rng.uniform(0.0, 0.12, n)[:, None, None]
    phi = rng.uniform(0, np.pi, n)[:, None, None]
    outline = 1.0 + ecc * np.cos(2 * (theta - phi))
    for k in (7, 9, 11, 13):
        amp = rough[:, None, None] * rng.uniform(0.4, 1.0, n)[:, None, None]
        outline = outline + amp * np.cos(k * theta + rng.uniform(0, 2 * np.pi, n)[:, None, None])
    r_cell = radius[:, None, None] * outline
    cell = 1.0 / (1.0 + np.exp(-(r_cell - rho) / 0.6))

    # Nucleus: smaller eccentric blob, offset from the cell centre.
    r_nuc_mean = (nc_ratio * radius)[:, None, None]
    off = rng.uniform(0, 0.15, n)[:, None, None] * radius[:, None, None]
    ang = rng.uniform(0, 2 * np.pi, n)[:, None, None]
    ny, nx = cy + off * np.sin(ang), cx + off * np.cos(ang)
    rho_n = np.hypot(yy - ny, xx - nx)
    theta_n = np.arctan2(yy - ny, xx - nx)
    r_nuc = r_nuc_mean * (1.0 + rng.uniform(0, 0.1, n)[:, None, None] * np.cos(2 * (theta_n - phi)))
    nucleus = 1.0 / (1.0 + np.exp(-(r_nuc - rho_n) / 0.8)) * cell

    # Chromatin texture: band-limited noise whose grain size is a class feature.
    noise = rng.normal(size=(n, SIZE, SIZE))
    tex = _blur(noise, grain)
    tex = tex / (tex.std(axis=(1, 2), keepdims=True) + 1e-8)

    # Bright-field appearance.
    background = rng.uniform(0.50, 0.62, n)[:, None, None]
    gy, gx = rng.normal(0, 0.0025, n)[:, None, None], rng.normal(0, 0.0025, n)[:, None, None]
    illum = background + gy * (yy - SIZE / 2) + gx * (xx - SIZE / 2)
    img = illum.copy()
    img += 0.045 * cell  # cytoplasm slightly brighter
    ring = np.exp(-((rho - r_cell) ** 2) / (2 * 0.9**2))
    img -= rng.uniform(0.14, 0.24, n)[:, None, None] * ring  # membrane
    halo = np.exp(-((rho - r_cell - 2.0) ** 2) / (2 * 1.2**2))
    img += 0.05 * halo
    img -= rng.uniform(0.08, 0.14, n)[:, None, None] * nucleus
    img += chromatin[:, None, None] * nucleus * tex

    # Debris: a few small dark specks anywhere.
    n_debris = rng.poisson(0.8, n)
    for i in np.nonzero(n_debris)[0]:
        for _ in range(int(n_debris[i])):
            py, px = rng.uniform(0, SIZE, 2)
            r = rng.uniform(0.6, 1.6)
            img[i] -= rng.uniform(0.1, 0.3) * np.exp(-((yy[0] - py) ** 2 + (xx[0] - px) ** 2) / (2 * r * r))

    # Focus blur, then exposure and shot noise.
    focus = rng.uniform(*_FOCUS, n) * min(1.0, difficulty)
    img = _blur(img, focus)
    gain = rng.uniform(0.9, 1.1, n)[:, None, None]
    img = np.clip(img * gain, 0.0, 1.0)
    photons = rng.uniform(300, 900, n)[:, None, None]
    img = rng.poisson(img * photons) / photons
    return np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)


def generate(
    n: int,
    seed: int,
    *,
    difficulty: float = 1.0,
    classes: tuple[int, ...] = (0, 1, 2),
    chunk: int = 512,
) -> tuple[np.ndarray, np.ndarray]:
    """Generate ``n`` images (balanced over ``classes``) deterministically from ``seed``.

    Returns ``(images uint8 [n, 64, 64], labels int64 [n])`` with LymphoMNIST labels.
    """
    if n <= 0:
        raise ValueError("n must be positive")
    rng = np.random.default_rng(seed)
    labels = np.resize(np.asarray(classes, dtype=np.int64), n)
    rng.shuffle(labels)
    images = np.empty((n, SIZE, SIZE), dtype=np.uint8)
    for start in range(0, n, chunk):
        sub = np.random.default_rng([seed, start])
        images[start : start + chunk] = _render(labels[start : start + chunk], sub, difficulty)
    return images, labels


def mislabel(labels: np.ndarray, rate: float, classes: tuple[int, ...], *, seed: int) -> np.ndarray:
    """Assign a fraction ``rate`` of ``labels`` to another of ``classes``, deterministically.

    Models the impurity of the ground truth of real sorted-cell datasets, whose labels come
    from fluorescence gating: some cells carry the wrong class. Exactly ``round(rate·n)``
    labels change, each to a uniformly chosen different class.
    """
    if not 0.0 <= rate < 0.5:
        raise ValueError(f"label noise rate must be in [0, 0.5), got {rate}")
    out = np.array(labels, dtype=np.int64, copy=True)
    if rate == 0 or len(classes) < 2:
        return out
    rng = np.random.default_rng([seed, 0x6C61626C])
    idx = rng.choice(len(out), size=int(round(rate * len(out))), replace=False)
    pool = np.asarray(classes, dtype=np.int64)
    for i in idx:
        others = pool[pool != out[i]]
        out[i] = others[rng.integers(len(others))]
    return out
