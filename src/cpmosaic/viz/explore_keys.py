"""Keyboard shortcuts of the explorer: next/previous amp, detector and metric.

==================  ===============================================
key                 does
==================  ===============================================
``n`` or ``→``      next amp (into the next detector after its last)
``p`` or ``←``      previous amp
``↓`` / ``↑``       same amp of the next / previous detector
``m`` / ``M``       next / previous metric
==================  ===============================================

The order is the camera's (detectors, then each detector's amps), as
:func:`~cpmosaic.viz.amp_pick.step_amp` walks it; everything wraps around.  Keys typed
into a widget (a text box, a select) are left to it.  :func:`press` does in Python what a
key does in the page; :class:`KeyListener` is the page's side (a Panel ``JSComponent``
that forwards the keys it handles).
"""

from __future__ import annotations

from typing import Any, Callable

from panel.custom import JSComponent

from .amp_pick import step_amp

__all__ = ["KEYS", "KeyListener", "press"]

#: Key -> (what moves, step).
KEYS: dict[str, tuple[str, int]] = {
    "n": ("amp", 1), "ArrowRight": ("amp", 1), "p": ("amp", -1), "ArrowLeft": ("amp", -1),
    "ArrowDown": ("detector", 1), "ArrowUp": ("detector", -1), "m": ("metric", 1), "M": ("metric", -1),
}


def press(app: Any, key: str) -> bool:
    """Apply *key* to an :class:`~cpmosaic.viz.explorer.Explorer`; False for a key it does not use."""
    if key not in KEYS:
        return False
    what, step = KEYS[key]
    if what == "metric":
        from .explore_data import choices

        options = choices(app.df, app.state)["metric"]  # what the metric widget offers
        if options:
            i = options.index(app.metric) if app.metric in options else -step
            app.metric = options[(i + step) % len(options)]
        return True
    hit = step_amp(app.geometry, app.detector, app.amp, step, by=what)
    if hit is not None:
        app.select_amp(*hit)
    return True


class KeyListener(JSComponent):
    """Forwards the page's shortcut keys (:data:`KEYS`) to ``on_key(key)`` on the server."""

    def __init__(self, on_key: Callable[[str], Any] | None = None, **params: Any) -> None:
        super().__init__(**params)
        self.on_key = on_key  # not a parameter: parameters are synced to the page, a function cannot be
    _esm = """
    const KEYS = %s;
    export function render({ model }) {
      const handler = (e) => {
        if (e.ctrlKey || e.metaKey || e.altKey || !KEYS.includes(e.key)) return;
        const t = e.composedPath()[0];
        if (t && (['INPUT', 'SELECT', 'TEXTAREA'].includes(t.tagName) || t.isContentEditable)) return;
        e.preventDefault();
        model.send_msg({key: e.key});
      };
      document.addEventListener('keydown', handler);
      model.on('remove', () => document.removeEventListener('keydown', handler));
      const el = document.createElement('span');
      el.id = 'cpm-keys';
      return el;
    }
    """ % list(KEYS)

    def _handle_msg(self, msg: Any) -> None:
        key = msg.get("key") if isinstance(msg, dict) else None
        if isinstance(key, str) and self.on_key is not None:
            self.on_key(key)


def listener(on_key: Callable[[str], Any]) -> KeyListener:
    """A :class:`KeyListener` calling *on_key* (width 0: it shows nothing)."""
    return KeyListener(on_key=on_key, width=0, height=0, margin=0)
