"""Layer streaming: run a stack of layers whose weights exceed a GPU budget.

    streamer = umpool.streaming.LayerStreamer(model.model.layers, budget_bytes,
                                              fixed_bytes=embeddings_and_head)
    model.generate(...)        # streamed layers are fetched ahead, dropped after use
    streamer.remove()          # everything resident again

The first layers stay resident; the last ones (as many as the budget
requires) are streamed: each lives in its own umpool tag (a private pool with
the weights role), is put to sleep after its forward pass and woken one layer
ahead on a side stream, so its copy in overlaps the layer before it (the first
streamed layer is woken when the pass starts, overlapping the resident ones). Weights
do not change while generating, so every sleep after the first reuses the
staged copy (umpool.sleep(unchanged=True)): putting a layer to sleep only
drops its GPU pages, and waking it refills them and copies it back from
pinned memory (about 47 GB/s on an H200). At most two streamed layers are
resident at once (the running one and the next), so the plan keeps
fixed_bytes + resident layers + two streamed layers within the budget.

mode="fault" is the baseline the issue compares against: the same layers and
budget, each evicted to host memory after use (one batched prefetch to the
host on a side stream) and brought back by the page faults of the kernels
that touch it, with no prefetch.

Needs umpool's own PyTorch allocator (umpool.torch.enable()) and a GPU. Not
thread-safe: one streamer per model, used by the thread that runs it. The
parameters must not be written while streaming (a streamed layer's writes
would be lost at its next wake-up). CUDA graphs cannot capture the hooks.
"""

import itertools

from . import prefetch_blocks, sleep, wake_up
from . import torch as _umtorch

_ids = itertools.count()


def _layer_bytes(layer):
    return sum(p.numel() * p.element_size() for p in layer.parameters()) + sum(
        b.numel() * b.element_size() for b in layer.buffers())


class LayerStreamer:
    """Streams the last layers of `layers` (a sequence of torch.nn.Module
    whose tensors are on one CUDA device, run in order once per forward pass)
    so that at most `budget_bytes` of their weights, plus `fixed_bytes` of
    other weights the caller keeps resident, are on the GPU at once.

    mode: "prefetch" (the default: fetched a layer ahead, dropped after use)
    or "fault" (evicted after use, faulted back; the baseline). Raises
    ValueError when even two streamed layers do not fit the budget.
    Attributes: streamed (indices), resident_layers (indices), plan_bytes
    (the most weight bytes the plan keeps on the GPU)."""

    def __init__(self, layers, budget_bytes, fixed_bytes=0, mode="prefetch"):
        import torch
        if mode not in ("prefetch", "fault"):
            raise ValueError(f"mode must be 'prefetch' or 'fault', not {mode!r}")
        self.layers = list(layers)
        if not self.layers:
            raise ValueError("LayerStreamer: no layers")
        self.mode = mode
        sizes = [_layer_bytes(l) for l in self.layers]
        window = 2 * max(sizes)  # the running streamed layer and the next
        room = budget_bytes - fixed_bytes - window
        if room < 0:
            raise ValueError(
                f"LayerStreamer: a budget of {budget_bytes} bytes cannot hold {fixed_bytes} fixed "
                f"bytes and two streamed layers ({window} bytes)")
        keep = 0
        while keep < len(self.layers) and sum(sizes[:keep + 1]) <= room:
            keep += 1
        self.resident_layers = list(range(keep))
        self.streamed = list(range(keep, len(self.layers)))
        self.plan_bytes = fixed_bytes + sum(sizes[:keep]) + (window if self.streamed else 0)
        self._torch = torch
        self._device = next(self.layers[0].parameters()).device
        self._side = torch.cuda.Stream(self._device)
        self._ready = {}
        self._hooks = []
        self._tags = {}
        if not self.streamed:
            return
        # Each streamed layer into its own tag (a private pool, weights role),
        # once: a later streamer over the same layers reuses the tags (and the
        # pinned copies their last sleep made).
        for j in self.streamed:
            name = getattr(self.layers[j], "_umpool_stream_tag", None)
            self._tags[j] = name
            if name is not None:
                continue
            name = self._tags[j] = f"umpool.stream.{next(_ids)}"
            self.layers[j]._umpool_stream_tag = name
            with _umtorch.tag(name, role="weights", device=self._device):
                for mod in self.layers[j].modules():
                    for p in mod.parameters(recurse=False):
                        p.data = p.data.clone()
                    for k, b in list(mod._buffers.items()):
                        if b is not None:
                            mod._buffers[k] = b.clone()
        torch.cuda.synchronize(self._device)
        torch.cuda.empty_cache()  # the copies' old storage
        self._tensors = {j: list(self.layers[j].parameters()) + list(self.layers[j].buffers())
                         for j in self.streamed}
        for j, layer in enumerate(self.layers):
            if mode == "prefetch":  # fetched ahead; faulting needs no pre-hook
                self._hooks.append(layer.register_forward_pre_hook(self._pre_hook(j)))
            if j in self._tags:
                self._hooks.append(layer.register_forward_hook(self._post_hook(j)))
        for j in self.streamed:
            self._put_away(j, torch.cuda.current_stream(self._device))
        torch.cuda.synchronize(self._device)

    def _put_away(self, j, stream):
        if self.mode == "prefetch":
            sleep(offload=("weights",), tags=self._tags[j], device=self._device, stream=stream,
                  unchanged=True)
        else:
            self._side.wait_stream(stream)
            prefetch_blocks(self._tensors[j], where="cpu", stream=self._side)

    def _bring_ahead(self, j, stream):
        self._side.wait_stream(stream)  # after the work queued so far (its last sleep)
        wake_up(tags=self._tags[j], device=self._device, stream=self._side)
        ev = self._torch.cuda.Event()
        ev.record(self._side)
        self._ready[j] = ev

    def _pre_hook(self, j):
        def hook(module, args):
            cur = self._torch.cuda.current_stream(self._device)
            first = self.streamed[0]
            if j == 0 and first not in self._ready:
                # The first streamed layer comes in while the resident ones run.
                self._bring_ahead(first, cur)
            if j in self._tags:
                if j not in self._ready:  # not fetched ahead
                    self._bring_ahead(j, cur)
                cur.wait_event(self._ready.pop(j))
            nxt = j + 1
            if nxt in self._tags and nxt not in self._ready:
                self._bring_ahead(nxt, cur)
        return hook

    def _post_hook(self, j):
        def hook(module, args, output):
            self._put_away(j, self._torch.cuda.current_stream(self._device))
        return hook

    def remove(self):
        """Removes the hooks and brings every streamed layer back to the GPU
        (it stays in its tag's pool). Idempotent."""
        for h in self._hooks:
            h.remove()
        self._hooks = []
        cur = self._torch.cuda.current_stream(self._device)
        for j in self.streamed:
            if self.mode == "prefetch":
                wake_up(tags=self._tags[j], device=self._device, stream=cur)
            else:
                prefetch_blocks(self._tensors[j], where="cuda", stream=cur)
        self._ready = {}
        self._torch.cuda.synchronize(self._device)
        self.streamed = []
