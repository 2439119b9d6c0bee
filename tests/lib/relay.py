# relay.py: a plain UDP relay on loopback for tests, in a thread: forwards a slave link's
# datagrams to the master and back, and keeps copies of what went up (for replay tests).
import collections
import selectors
import socket
import threading


class CaptureRelay:
    def __init__(self, target_port, keep=2000):
        self.target = ("127.0.0.1", target_port)
        self.down = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # faces the slave
        self.down.bind(("127.0.0.1", 0))
        self.port = self.down.getsockname()[1]
        self.up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)    # faces the master
        self.up.bind(("127.0.0.1", 0))
        self.up_port = self.up.getsockname()[1]
        self.client = None
        self.drop_up = None  # a predicate: datagrams going up for which it is true are dropped
        self.captured = collections.deque(maxlen=keep)
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        sel = selectors.DefaultSelector()
        sel.register(self.down, selectors.EVENT_READ)
        sel.register(self.up, selectors.EVENT_READ)
        while not self._stop.is_set():
            for key, _ in sel.select(0.1):
                s = key.fileobj
                try:
                    data, src = s.recvfrom(65536)
                except OSError:
                    continue
                if s is self.down:
                    self.client = src
                    with self.lock:
                        self.captured.append(data)
                    drop = self.drop_up
                    if not (drop and drop(data)):
                        self.up.sendto(data, self.target)
                elif src == self.target and self.client:
                    self.down.sendto(data, self.client)
        sel.close()

    def snapshot(self):
        with self.lock:
            return list(self.captured)

    def send_as_link(self, data):
        """Send a datagram to the master from the relay's own upstream address."""
        self.up.sendto(data, self.target)

    def stop(self):
        self._stop.set()
        self.t.join(2)
        self.down.close()
        self.up.close()
