"""A headless Chromium driven over the DevTools protocol on a pipe (no extra package).

`--remote-debugging-pipe` makes Chromium read protocol commands from its fd 3 and write
replies and events to its fd 4, each message JSON ending in a NUL byte: no port, no
websocket, no driver binary. Commands go to one page, through a flat session
(Target.attachToTarget with flatten), and every event of that page is kept, so a test
can read the Network domain's log of what the page requested.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import signal
import subprocess
import time
from pathlib import Path

# Known to work headless as root on this machine; nothing of Chromium's own calls home.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1280,900",
    # Resolve no host at all: a page that asks for https://... still logs its request
    # (Network.requestWillBeSent), and the test never touches the network.
    "--host-resolver-rules=MAP * ~NOTFOUND",
)


class DevToolsError(RuntimeError):
    pass


def _above_4(fd: int) -> int:
    """`fd` moved to a number above 4, so that putting it on 3 or 4 cannot clobber it."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


class Browser:
    """One Chromium process and one page in it.

    Args:
        executable: the chromium binary (Debian's /usr/bin/chromium).
        profile: a new empty folder for --user-data-dir.
        timeout: seconds to wait for any one reply or event.
    """

    def __init__(self, executable: str, profile: Path, timeout: float = 60.0):
        self.timeout = timeout
        self.events: list[dict] = []  # every event of the page, in order
        self.session: str | None = None
        self._next_id = 0
        self._buffer = b""
        commands_read, self._commands = os.pipe()  # we write; Chromium reads its fd 3
        self._replies, replies_write = os.pipe()  # Chromium writes its fd 4; we read
        commands_read, replies_write = _above_4(commands_read), _above_4(replies_write)
        # bash (dash takes no fd above 9) puts the pipe ends on fds 3 and 4, then is Chromium
        script = f'exec "$0" "$@" 3<&{commands_read} 4>&{replies_write} {commands_read}<&- {replies_write}>&-'  # noqa: E501
        self.process = subprocess.Popen(
            [
                "bash",
                "-c",
                script,
                executable,
                *FLAGS,
                f"--user-data-dir={profile}",
                "--remote-debugging-pipe",
                "about:blank",
            ],
            pass_fds=(commands_read, replies_write),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        os.close(commands_read)
        os.close(replies_write)
        try:
            target = self.send("Target.createTarget", {"url": "about:blank"}, page=False)
            attached = self.send(
                "Target.attachToTarget",
                {"targetId": target["targetId"], "flatten": True},
                page=False,
            )
            self.session = attached["sessionId"]
            for domain in ("Page", "Network", "Runtime"):
                self.send(f"{domain}.enable")
        except BaseException:
            self.close()
            raise

    def _message(self, deadline: float) -> dict:
        """The next message from Chromium."""
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._replies], [], [], left)[0]:
                raise DevToolsError(f"no reply from Chromium in {self.timeout} s")
            chunk = os.read(self._replies, 1 << 20)
            if not chunk:
                stderr = self.process.stderr.read().decode(errors="replace")[-3000:]
                raise DevToolsError(
                    f"Chromium closed the pipe (exit {self.process.poll()}):\n{stderr}"
                )
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def _keep(self, message: dict) -> None:
        if "method" in message and self.session and message.get("sessionId") == self.session:
            self.events.append(message)

    def send(self, method: str, params: dict | None = None, *, page: bool = True) -> dict:
        """Run one protocol command (on the page, or on the browser) and return its result."""
        self._next_id += 1
        command = {"id": self._next_id, "method": method, "params": params or {}}
        if page:
            command["sessionId"] = self.session
        os.write(self._commands, json.dumps(command).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            message = self._message(deadline)
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise DevToolsError(f"{method}: {message['error']}")
                return message["result"]
            self._keep(message)

    def wait_for(self, method: str, since: int = 0) -> dict:
        """The first event `method` of the page at or after index `since` of self.events."""
        deadline = time.monotonic() + self.timeout
        while True:
            for event in self.events[since:]:
                if event["method"] == method:
                    return event
            since = len(self.events)
            self._keep(self._message(deadline))

    def open(self, url: str) -> None:
        """Navigate the page to `url` and wait for its load event (every image loaded)."""
        since = len(self.events)
        navigated = self.send("Page.navigate", {"url": url})
        if "errorText" in navigated:
            raise DevToolsError(f"could not open {url}: {navigated['errorText']}")
        self.wait_for("Page.loadEventFired", since)

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (a promise is awaited)."""
        reply = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in reply:
            raise DevToolsError(f"the page's script failed: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def requested(self) -> list[str]:
        """The URL of every request the page made (Network.requestWillBeSent), in order."""
        return [
            e["params"]["request"]["url"]
            for e in self.events
            if e["method"] == "Network.requestWillBeSent"
        ]

    def screenshot(self, path: Path, width: int = 1280) -> tuple[int, int]:
        """A PNG of the whole page at `width` CSS pixels; returns its (width, height)."""
        size = self.send("Page.getLayoutMetrics")["cssContentSize"]
        height = int(size["height"]) + 1
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        shot = self.send("Page.captureScreenshot", {"format": "png"})
        Path(path).write_bytes(base64.b64decode(shot["data"]))
        return width, height

    def close(self) -> None:
        """Ask Chromium to quit; kill its process group (ours) if it does not."""
        try:
            if self.process.poll() is None:
                self.send("Browser.close", page=False)
        except (DevToolsError, OSError):
            pass
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        try:  # Chromium's own session: whatever of it is left (a renderer, crashpad)
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=20)
        for fd in (self._commands, self._replies):
            os.close(fd)
        self.process.stderr.close()
