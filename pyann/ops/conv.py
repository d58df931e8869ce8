"""2-D convolution (NCHW, cross-correlation as in every framework), with stride, zero padding,
dilation and groups. Depthwise (groups == C == F) has its own path; 1x1 is the general path.

    y[n, f, i, j] = b[f] + sum_{c, u, v} w[f, c, u, v] * xp[n, g(f) * C_g + c, s*i + d*u, s*j + d*v]

where xp is x zero-padded by p on each side, C_g = C / groups input channels per group, g(f) the
group of output channel f, and Ho = (H + 2p - d(KH - 1) - 1) // s + 1 (Wo alike).

General path: im2col through sliding_window_view (a strided view, then one copy into a
channel-major (C*KH*KW, N*Ho*Wo) column buffer) and one GEMM per group for the whole batch. The
backward pass never uses np.add.at: dW is a GEMM with the cached columns; dx is a transposed
convolution (im2col of the padded dy + GEMM with the flipped kernel) for stride 1, and otherwise
W^T @ dY followed by col2im, which adds KH*KW strided slices (each a plain vectorised add; taps
overlap only across iterations).
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


def im2col(xp, kh, kw, ho, wo, s, d, out=None, channel_major=False):
    """xp (N, C, Hp, Wp) -> columns (C, KH, KW, N, Ho, Wo), a C-contiguous copy.
    channel_major: xp is (C, N, Hp, Wp) instead (the layout the backward pass has dy in).

    Channel-major so that the whole batch is one GEMM operand (C*KH*KW, N*Ho*Wo): one large
    GEMM runs far closer to BLAS peak than N small ones. Wo stays innermost, so the copy reads
    rows of xp rather than 3-element kernel rows.
    """
    win = sliding_window_view(xp, (d * (kh - 1) + 1, d * (kw - 1) + 1), axis=(2, 3))
    win = win[:, :, ::s, ::s, ::d, ::d][:, :, :ho, :wo]       # (N, C, Ho, Wo, KH, KW) view
    win = win.transpose((0, 4, 5, 1, 2, 3) if channel_major else (1, 4, 5, 0, 2, 3))
    if out is None:
        return np.ascontiguousarray(win)
    np.copyto(out, win)
    return out


def col2im(dcols, x_shape, p, s, d):
    """dcols (C, KH, KW, N, Ho, Wo) -> dx (N, C, H, W).

    Adds each kernel tap's (C, N, Ho, Wo) block into a channel-major padded buffer (contiguous
    source, strided destination; taps overlap only across iterations, so no np.add.at), then
    one transposing copy back to NCHW.
    """
    c, kh, kw, n, ho, wo = dcols.shape
    h, w = x_shape[2:]
    dxp = np.zeros((c, n, h + 2 * p, w + 2 * p), dcols.dtype)
    for u in range(kh):
        for v in range(kw):
            _window(dxp, u, v, ho, wo, s, d)[...] += dcols[:, u, v]
    return np.ascontiguousarray(dxp[:, :, p:p + h, p:p + w].transpose(1, 0, 2, 3))


def conv2d_forward(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, workspace=None):
    """x (N, C, H, W), w (F, C/groups, KH, KW), b (F,) or None -> y (N, F, Ho, Wo), cache.

    One GEMM per group: (F_g, C_g*KH*KW) @ (C_g*KH*KW, N*Ho*Wo). A 1x1 convolution is the same
    path with a trivial window (the "columns" are a transposed copy of x).
    workspace: optional dict a layer keeps between calls; the column buffer is reused from it
    when the shapes match, which saves allocating (and page-faulting) a large array every step.
    """
    ho, wo = _check(x, w, b, stride, padding, dilation, groups)
    n, c = x.shape[:2]
    f, cg, kh, kw = w.shape
    meta = (x.shape, stride, padding, dilation, groups)
    if groups == c and f == c:
        return _depthwise_forward(x, w, b, ho, wo, meta)
    shape = (c, kh, kw, n, ho, wo)
    buf = None if workspace is None else workspace.get("cols")
    if buf is None or buf.shape != shape or buf.dtype != x.dtype:
        buf = np.empty(shape, x.dtype)
        if workspace is not None:
            workspace["cols"] = buf
    cols = im2col(_pad(x, padding), kh, kw, ho, wo, stride, dilation, out=buf)
    cols = cols.reshape(groups, cg * kh * kw, n * ho * wo)
    y = np.matmul(w.reshape(groups, f // groups, cg * kh * kw), cols)   # (groups, F_g, N*Ho*Wo)
    y = np.ascontiguousarray(y.reshape(f, n, ho, wo).transpose(1, 0, 2, 3))
    if b is not None:
        y += b.reshape(1, f, 1, 1)
    return y, ("gemm", cols, w, b is not None, meta)


def conv2d_backward(dy, cache, input_grad=True):
    """dy (N, F, Ho, Wo) -> dx (N, C, H, W), dw (F, C/groups, KH, KW), db (F,) or None.
    input_grad=False returns dx = None without computing it (the input is data).

    With dY = dy as (F, N*Ho*Wo) per group: dW = dY @ cols^T, db = sum_{n,i,j} dy, and
        stride 1, F <= C: dx = conv(dy padded by K-1-p, W flipped and transposed), one more
                  im2col + GEMM, written into the forward's column buffer (now consumed);
        otherwise: dcols = W^T @ dY, dx = col2im(dcols).
    The cache's column buffer may be overwritten: call backward once per forward.
    """
    kind, cols, w, has_bias, meta = cache
    if kind == "depthwise":
        return _depthwise_backward(dy, cache, input_grad)
    x_shape, s, p, d, groups = meta
    n, c, h, wd = x_shape
    f, cg, kh, kw = w.shape
    fg = f // groups
    ho, wo = dy.shape[2:]
    db = dy.sum(axis=(0, 2, 3)) if has_bias else None
    dyt = np.ascontiguousarray(dy.transpose(1, 0, 2, 3))                # (F, N, Ho, Wo)
    dyg = dyt.reshape(groups, fg, n * ho * wo)
    # The inner axis N*Ho*Wo is huge and the output tiny. OpenBLAS (0.3.x, 2 threads) can be
    # 10-500x slower when such an output is wider than tall, so orient it tall.
    k = cg * kh * kw
    if k >= fg:
        dw = np.matmul(cols, dyg.transpose(0, 2, 1)).transpose(0, 2, 1).reshape(w.shape)
    else:
        dw = np.matmul(dyg, cols.transpose(0, 2, 1)).reshape(w.shape)
    if not input_grad:
        return None, dw, db
    q = kh - 1 - p
    if s == 1 and d == 1 and kh == kw and 0 <= q and f <= c:
        # transposed convolution (its columns have F rows per tap, col2im's C: pick the smaller): dx[c] = sum_{f,u,v} dyp[f, i + u, j + v] w[f, c, K-1-u, K-1-v]
        need = f * kh * kw * n * h * wd
        buf = cols.reshape(-1)[:need].reshape(f, kh, kw, n, h, wd) if cols.size >= need else None
        dcols = im2col(_pad(dyt, q), kh, kw, h, wd, 1, 1, out=buf, channel_major=True)
        wt = w[:, :, ::-1, ::-1].reshape(groups, fg, cg, kh * kw).transpose(0, 2, 1, 3)
        wt = wt.reshape(groups, cg, fg * kh * kw)
        dxt = np.matmul(wt, dcols.reshape(groups, fg * kh * kw, n * h * wd))  # (groups, C_g, N*H*W)
        return np.ascontiguousarray(dxt.reshape(c, n, h, wd).transpose(1, 0, 2, 3)), dw, db
    wg = w.reshape(groups, fg, cg * kh * kw)
    dcols = np.matmul(wg.transpose(0, 2, 1), dyg).reshape(c, kh, kw, n, ho, wo)
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


def _depthwise_backward(dy, cache, input_grad):
    """dw[c, u, v] = sum_{n,i,j} dy * xp-slice(u, v); dx-slice(u, v) += dy * w[c, u, v]."""
    _, xp, w, has_bias, meta = cache
    x_shape, s, p, d, _ = meta
    f, _, kh, kw = w.shape
    ho, wo = dy.shape[2:]
    dxp = np.zeros(xp.shape, dy.dtype) if input_grad else None
    dw = np.empty_like(w)
    for u in range(kh):
        for v in range(kw):
            dw[:, 0, u, v] = np.einsum("nchw,nchw->c", dy, _window(xp, u, v, ho, wo, s, d))
            if input_grad:
                _window(dxp, u, v, ho, wo, s, d)[...] += dy * w[:, 0, u, v].reshape(1, f, 1, 1)
    h, wd = x_shape[2:]
    db = dy.sum(axis=(0, 2, 3)) if has_bias else None
    return (dxp[:, :, p:p + h, p:p + wd] if input_grad else None), dw, db
