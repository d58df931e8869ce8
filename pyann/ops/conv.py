"""2-D convolution (NCHW, cross-correlation as in every framework), with stride, zero padding,
dilation and groups. Depthwise (groups == C == F) and 1x1 are special cases with their own paths.

    y[n, f, i, j] = b[f] + sum_{c, u, v} w[f, c, u, v] * xp[n, g(f) * C_g + c, s*i + d*u, s*j + d*v]

where xp is x zero-padded by p on each side, C_g = C / groups input channels per group, g(f) the
group of output channel f, and Ho = (H + 2p - d(KH - 1) - 1) // s + 1 (Wo alike).

General path: im2col through sliding_window_view (a strided view, then one copy into a
(N, groups, C_g*KH*KW, Ho*Wo) column buffer) and one batched GEMM per group. The backward pass
never uses np.add.at: dW is a GEMM with the cached columns, dcols a GEMM with W, and col2im adds
KH*KW strided slices (each slice is a plain vectorised add; windows overlap only across slices).
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def conv_output_size(size, kernel, stride=1, padding=0, dilation=1):
    """Output length of a convolution or pool along one axis."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _check(x, w, b, stride, padding, dilation, groups):
    if x.ndim != 4:
        raise ValueError(f"conv2d expects input of rank 4 (N, C, H, W), got shape {x.shape}")
    if w.ndim != 4:
        raise ValueError(f"conv2d expects weights of rank 4 (F, C/groups, KH, KW), got {w.shape}")
    n, c, h, wd = x.shape
    f, cg, kh, kw = w.shape
    if groups < 1 or c % groups or f % groups:
        raise ValueError(f"conv2d: channels in={c}, out={f} must both divide into groups={groups}")
    if cg * groups != c:
        raise ValueError(f"conv2d: input has {c} channels but weights expect {cg * groups} "
                         f"({cg} per group x {groups} groups)")
    if b is not None and b.shape != (f,):
        raise ValueError(f"conv2d: bias must have shape ({f},), got {b.shape}")
    if stride < 1 or padding < 0 or dilation < 1:
        raise ValueError(f"conv2d: need stride >= 1, padding >= 0, dilation >= 1; got "
                         f"{stride}, {padding}, {dilation}")
    ho = conv_output_size(h, kh, stride, padding, dilation)
    wo = conv_output_size(wd, kw, stride, padding, dilation)
    if ho < 1 or wo < 1:
        raise ValueError(f"conv2d: kernel {kh}x{kw} (dilation {dilation}) does not fit input "
                         f"{h}x{wd} with padding {padding}")
    return ho, wo


def _pad(x, p):
    if p == 0:
        return x
    n, c, h, w = x.shape
    xp = np.zeros((n, c, h + 2 * p, w + 2 * p), x.dtype)
    xp[:, :, p:p + h, p:p + w] = x
    return xp


def _window(xp, u, v, ho, wo, s, d):
    """The strided slice of xp that kernel tap (u, v) sees: (N, C, Ho, Wo) view."""
    return xp[:, :, d * u:d * u + s * (ho - 1) + 1:s, d * v:d * v + s * (wo - 1) + 1:s]


def im2col(xp, kh, kw, ho, wo, s, d, out=None):
    """xp (N, C, Hp, Wp) -> columns (N, C, KH, KW, Ho, Wo), a C-contiguous copy.

    The window view is (N, C, Ho, Wo, KH, KW); transposing it so that Wo is innermost makes the
    copy run over contiguous rows of xp instead of 3-element kernel rows.
    """
    win = sliding_window_view(xp, (d * (kh - 1) + 1, d * (kw - 1) + 1), axis=(2, 3))
    win = win[:, :, ::s, ::s, ::d, ::d][:, :, :ho, :wo]
    win = win.transpose(0, 1, 4, 5, 2, 3)
    if out is None:
        return np.ascontiguousarray(win)
    np.copyto(out, win)
    return out


def col2im(dcols, x_shape, p, s, d, out=None):
    """dcols (N, C, KH, KW, Ho, Wo) -> dx (N, C, H, W): adds each tap's slice back in place."""
    n, c, kh, kw, ho, wo = dcols.shape
    h, w = x_shape[2:]
    dxp = np.zeros((n, c, h + 2 * p, w + 2 * p), dcols.dtype) if out is None else out
    if out is not None:
        dxp.fill(0)
    for u in range(kh):
        for v in range(kw):
            _window(dxp, u, v, ho, wo, s, d)[...] += dcols[:, :, u, v]
    return dxp[:, :, p:p + h, p:p + w] if p else dxp


def conv2d_forward(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, workspace=None):
    """x (N, C, H, W), w (F, C/groups, KH, KW), b (F,) or None -> y (N, F, Ho, Wo), cache.

    workspace: optional dict a layer keeps between calls; the column buffer is reused from it
    when the shapes match, which saves allocating (and page-faulting) a large array every step.
    """
    ho, wo = _check(x, w, b, stride, padding, dilation, groups)
    n, c = x.shape[:2]
    f, cg, kh, kw = w.shape
    meta = (x.shape, stride, padding, dilation, groups)
    if groups == c and f == c:
        return _depthwise_forward(x, w, b, ho, wo, meta)
    if kh == kw == 1 and padding == 0 and groups == 1:
        # 1x1: no columns, a strided view is already the (N, C, Ho*Wo) matrix stack
        xs = np.ascontiguousarray(x[:, :, ::stride, ::stride]).reshape(n, c, ho * wo)
        y = np.matmul(w.reshape(f, c), xs)
        cols = xs
    else:
        shape = (n, c, kh, kw, ho, wo)
        buf = None if workspace is None else workspace.get("cols")
        if buf is None or buf.shape != shape or buf.dtype != x.dtype:
            buf = np.empty(shape, x.dtype)
            if workspace is not None:
                workspace["cols"] = buf
        cols = im2col(_pad(x, padding), kh, kw, ho, wo, stride, dilation, out=buf)
        cols = cols.reshape(n, groups, cg * kh * kw, ho * wo)
        # one BLAS GEMM per (sample, group): (F_g, C_g*KH*KW) @ (C_g*KH*KW, Ho*Wo)
        y = np.matmul(w.reshape(groups, f // groups, cg * kh * kw), cols)
    y = y.reshape(n, f, ho, wo)
    if b is not None:
        y += b.reshape(1, f, 1, 1)
    return y, ("gemm", cols, w, b is not None, meta)


def conv2d_backward(dy, cache):
    """dy (N, F, Ho, Wo) -> dx (N, C, H, W), dw (F, C/groups, KH, KW), db (F,) or None.

    dw = sum_n dy_n @ cols_n^T, dcols = W^T @ dy_n, dx = col2im(dcols), db = sum_{n,i,j} dy.
    """
    kind, cols, w, has_bias, meta = cache
    if kind == "depthwise":
        return _depthwise_backward(dy, cache)
    x_shape, s, p, d, groups = meta
    n, c, h, wd = x_shape
    f, cg, kh, kw = w.shape
    ho, wo = dy.shape[2:]
    db = dy.sum(axis=(0, 2, 3)) if has_bias else None
    if cols.ndim == 3:  # 1x1 path
        dy2 = dy.reshape(n, f, ho * wo)
        dw = np.matmul(dy2, cols.transpose(0, 2, 1)).sum(axis=0).reshape(w.shape)
        dxs = np.matmul(w.reshape(f, c).T, dy2).reshape(n, c, ho, wo)
        if s == 1:
            return dxs, dw, db
        dx = np.zeros(x_shape, dy.dtype)
        dx[:, :, ::s, ::s] = dxs
        return dx, dw, db
    dyg = dy.reshape(n, groups, f // groups, ho * wo)
    wg = w.reshape(groups, f // groups, cg * kh * kw)
    dw = np.matmul(dyg, cols.transpose(0, 1, 3, 2)).sum(axis=0).reshape(w.shape)
    dcols = np.matmul(wg.transpose(0, 2, 1), dyg).reshape(n, c, kh, kw, ho, wo)
    return col2im(dcols, x_shape, p, s, d), dw, db


def _depthwise_forward(x, w, b, ho, wo, meta):
    """Depthwise: each channel convolved with its own KH x KW filter. Per-group GEMMs would be
    1 x KH*KW matrices, so loop over the kernel taps and multiply-accumulate whole slices."""
    _, s, p, d, _ = meta
    xp = _pad(x, p)
    f, _, kh, kw = w.shape
    y = np.zeros((x.shape[0], f, ho, wo), x.dtype)
    for u in range(kh):
        for v in range(kw):
            y += _window(xp, u, v, ho, wo, s, d) * w[:, 0, u, v].reshape(1, f, 1, 1)
    if b is not None:
        y += b.reshape(1, f, 1, 1)
    return y, ("depthwise", xp, w, b is not None, meta)


def _depthwise_backward(dy, cache):
    """dw[c, u, v] = sum_{n,i,j} dy * xp-slice(u, v); dx-slice(u, v) += dy * w[c, u, v]."""
    _, xp, w, has_bias, meta = cache
    x_shape, s, p, d, _ = meta
    f, _, kh, kw = w.shape
    ho, wo = dy.shape[2:]
    dxp = np.zeros(xp.shape, dy.dtype)
    dw = np.empty_like(w)
    for u in range(kh):
        for v in range(kw):
            dw[:, 0, u, v] = np.einsum("nchw,nchw->c", dy, _window(xp, u, v, ho, wo, s, d))
            _window(dxp, u, v, ho, wo, s, d)[...] += dy * w[:, 0, u, v].reshape(1, f, 1, 1)
    h, wd = x_shape[2:]
    db = dy.sum(axis=(0, 2, 3)) if has_bias else None
    return dxp[:, :, p:p + h, p:p + wd], dw, db
