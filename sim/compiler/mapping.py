"""How a layer sits on the machine: data layouts, SB images and compute instructions.

Neurons live in rows of ``tn`` values. A ``[C, H, W]`` tensor occupies ``H * W * CB`` rows
(``CB = ceil(C / tn)`` channel blocks), row ``(y * W + x) * CB + cb`` holding channels
``cb*tn .. cb*tn + tn - 1`` at position ``(y, x)``; missing channels of the last block are
zero. A vector ``[N]`` is the tensor ``[N, 1, 1]``.

A fully connected layer is a convolution whose kernel covers its whole input (so an FC
after a convolution needs no reordering), with a ``1 x 1`` output.
"""

import numpy as np

from diannao.golden._tensor import lrn_window
from diannao.golden.formats import avg_reciprocal
from diannao.hw.isa import Op, compute_fields
from diannao.sim.compiler.cycle_model import tile_share


__all__ = ["blocks", "as_chw", "tensor_rows", "to_rows", "from_rows", "conv_sb_rows",
           "private_sb_rows", "pool_sb_row", "lrn_sb_rows",
           "layer_fields"]


def blocks(n, tn):
    """Blocks of ``tn`` needed for ``n`` values."""
    return -(-n // tn)


def tensor_rows(shape, tn):
    """NM rows of a tensor of ``shape`` (``[N]`` or ``[C, H, W]``): ``H * W * CB``."""
    c, h, w = as_chw(shape)
    return h * w * blocks(c, tn)


def as_chw(shape):
    """A tensor shape as ``(C, H, W)``."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 1:
        return (shape[0], 1, 1)
    if len(shape) == 3:
        return shape
    raise ValueError(f"a neuron tensor must be [N] or [C, H, W], not shape {shape}")


def to_rows(x, tn):
    """``[C,H,W]`` (or ``[N]``) int16 values -> ``[H*W*CB, tn]`` rows."""
    x = np.asarray(x, dtype=np.int64)
    c, h, w = as_chw(x.shape)
    cb = blocks(c, tn)
    padded = np.zeros((cb * tn, h, w), dtype=np.int64)
    padded[:c] = x.reshape(c, h, w)
    # [cb, tn, h, w] -> [h, w, cb, tn]
    return padded.reshape(cb, tn, h, w).transpose(2, 3, 0, 1).reshape(h * w * cb, tn)


def from_rows(rows, shape, tn):
    """Inverse of :func:`to_rows`: ``[H*W*CB, tn]`` rows -> a tensor of ``shape``."""
    c, h, w = as_chw(shape)
    cb = blocks(c, tn)
    rows = np.asarray(rows, dtype=np.int64).reshape(h, w, cb, tn)
    return rows.transpose(2, 3, 0, 1).reshape(cb * tn, h, w)[:c].reshape(shape)


def private_sb_rows(w, b, f, out_tile, chunk, first, tn, tiles):
    """Per tile, the SB rows of one compute instruction of a locally connected layer, in
    the order the tile reads them: for each of its output blocks (``f["sb_step"]`` rows,
    zero-padded, and as many blocks as the tile with the most), for each output position
    of its share, the bias row (``first`` chunk only) and the chunk's ``(ky, kx, cb)``
    rows of that position's own kernel (lane ``j``, element ``i``: ``w[ob*tn + j, oy, ox,
    cb*tn + i, ky, kx]``).

    Parameters
    ----------
    w : numpy.ndarray, [O, OH, OW, C, K, K]
    b : numpy.ndarray, [O]
    f : dict
        The instruction's fields.
    out_tile : tuple
        ``(oy0, oy1, ox0, ox1, b0, b1)`` of the output tile (:meth:`tiling.Plan.out_tiles`).
    chunk : tuple
        ``(k0, k1, c0, c1)``: kernel rows and channel blocks of the reduction's chunk.
    first : bool
        The first chunk (it has the bias rows).
    tn, tiles : int

    Returns
    -------
    list of numpy.ndarray, each ``[rows, tn, tn]``, all of one length
    """
    o, _, _, c = w.shape[:4]
    oy0, _, ox0, _, b0, _ = out_tile
    k0, k1, c0, c1 = chunk
    groups = 1 << f["log2_gob"]
    step = f["sb_step"]
    most = -(-f["ob"] // groups)
    out = []
    for t in range(tiles):
        rows = np.zeros((most * step, tn, tn), dtype=np.int64)
        nblocks, nrows = tile_share(f, t)
        py0 = oy0 + (t >> f["log2_gob"]) * f["oy_band"]
        for k in range(nblocks):
            blk = b0 + (t & (groups - 1)) + k * groups
            lanes = min(o, (blk + 1) * tn) - blk * tn
            r = k * step
            for py in range(py0, py0 + nrows):
                for px in range(ox0, ox0 + f["ow"]):
                    if first:
                        rows[r, :lanes, 0] = b[blk * tn:blk * tn + lanes]
                        r += 1
                    # [lanes, channels of the chunk, ky, kx] -> rows (ky, kx, cb) of [j, i]
                    kern = np.zeros((tn, (c1 - c0) * tn, k1 - k0, w.shape[5]), dtype=np.int64)
                    chans = min(c, c1 * tn) - c0 * tn
                    kern[:lanes, :chans] = w[blk * tn:blk * tn + lanes, py, px,
                                             c0 * tn:c0 * tn + chans, k0:k1]
                    kern = kern.reshape(tn, c1 - c0, tn, k1 - k0, -1).transpose(3, 4, 1, 0, 2)
                    n = kern.shape[0] * kern.shape[1] * kern.shape[2]
                    rows[r:r + n] = kern.reshape(n, tn, tn)
                    r += n
        out.append(rows)
    return out


def conv_sb_rows(w, b, tn):
    """SB rows of a convolution: ``[OB, 1 + KH*KW*CB, tn, tn]``.

    For output block ``ob``, row 0 is the bias row (lane ``j`` holds ``b[ob*tn + j]`` in
    element 0, meeting the input ``1 << bias_exp``), then one row per ``(ky, kx, cb)`` in
    loop order: lane ``j``, element ``i`` is ``w[ob*tn + j, cb*tn + i, ky, kx]``.
    """
    w = np.asarray(w, dtype=np.int64)
    o, c, kh, kw = w.shape
    ob, cb = blocks(o, tn), blocks(c, tn)
    wp = np.zeros((ob * tn, cb * tn, kh, kw), dtype=np.int64)
    wp[:o, :c] = w
    # [ob, j, cb, i, ky, kx] -> [ob, ky, kx, cb, j, i]
    body = wp.reshape(ob, tn, cb, tn, kh, kw).transpose(0, 4, 5, 2, 1, 3)
    body = body.reshape(ob, kh * kw * cb, tn, tn)
    bias = np.zeros((ob, 1, tn, tn), dtype=np.int64)
    bp = np.zeros(ob * tn, dtype=np.int64)
    bp[:o] = np.asarray(b, dtype=np.int64)
    bias[:, 0, :, 0] = bp.reshape(ob, tn)
    return np.concatenate([bias, body], axis=1)


def lrn_sb_rows(channels, size, tn):
    """SB rows of an LRN layer: ``[CB, CB, tn, tn]``, no bias row; for output block ``ob``,
    row ``cb`` is the window's mask: lane ``j``, element ``i`` is -1 (all ones: NFU-1 takes
    ``x & w``) when input channel ``cb*tn + i`` lies in the window of output channel
    ``ob*tn + j`` (:func:`golden._tensor.lrn_window`), else 0."""
    before, after = lrn_window(size)
    n = blocks(channels, tn) * tn
    out_c, in_c = np.arange(n)[:, None], np.arange(n)[None, :]
    mask = (in_c >= out_c - before) & (in_c <= out_c + after) & (in_c < channels) \
        & (out_c < channels)
    w = -mask.astype(np.int64)[:, :, None, None]                # [O, C, 1, 1]
    return conv_sb_rows(w, np.zeros(n, dtype=np.int64), tn)[:, 1:]


def pool_sb_row(kind, size, tn):
    """The diagonal SB row of a pooling layer: ``1`` for max, the reciprocal ``r`` for avg."""
    value = 1 if kind == "maxpool" else avg_reciprocal(size * size)[0]
    return np.eye(tn, dtype=np.int64) * value


def layer_fields(kind, in_shape, out_shape, *, tn, kernel=None, stride=1, pad=0,
                 log2_gob=0, oy_band=None, sb_base=0, nbin_base=0, out_base=0, shift=0,
                 bias_exp=0, act=0, table=0):
    """Instruction fields (see :func:`hw.isa.compute_fields`) for one layer.

    ``kind`` is ``"conv"``, ``"fc"``, ``"maxpool"`` or ``"avgpool"``; ``kernel`` is the
    square kernel/window size (ignored for ``"fc"``).
    """
    c, h, w = as_chw(in_shape)
    o, oh, ow = as_chw(out_shape)
    cb, ob = blocks(c, tn), blocks(o, tn)
    if kind == "fc":
        op, kh, kw, stride, pad = Op.CONV, h, w, 1, 0
    elif kind == "conv":
        op, kh, kw = Op.CONV, kernel, kernel
    elif kind in ("maxpool", "avgpool"):
        op = Op.MAXPOOL if kind == "maxpool" else Op.AVGPOOL
        kh = kw = kernel
        pad = 0
        if kind == "avgpool":
            shift = avg_reciprocal(kernel * kernel)[1]
    else:
        raise ValueError(f"unsupported layer kind {kind!r}")
    sb_step = 1 + kh * kw * cb if op == Op.CONV else 0
    return compute_fields(op=op, in_h=h, in_w=w, cb=cb, kh=kh, kw=kw, stride=stride,
                          y_off=pad, x_off=pad, oh=oh, ow=ow, ob=ob, ocb=ob,
                          log2_gob=log2_gob, oy_band=oy_band, sb_base=sb_base,
                          sb_step=sb_step, nbin_base=nbin_base, out_base=out_base,
                          shift=shift, bias_exp=bias_exp, act=act, table=table)
