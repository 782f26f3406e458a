"""A real SMTP server for the tests (aiosmtpd): every message it accepts is saved as
{root}/{recipient}/{time}.eml, the layout the server's file outbox uses, so tests find a
person's mails by address. Usage: smtp-sink.py HOST:PORT ROOT"""
import asyncio
import os
import re
import sys
import time

from aiosmtpd.controller import Controller


class Save:
    def __init__(self, root):
        self.root = root

    async def handle_DATA(self, server, session, envelope):
        for rcpt in envelope.rcpt_tos:
            name = re.sub(r"[^a-z0-9@._+-]", "_", rcpt.lower()).lstrip(".")
            folder = os.path.join(self.root, name)
            os.makedirs(folder, exist_ok=True)
            stamp = time.time_ns()
            tmp = os.path.join(folder, f".{stamp}.tmp")
            with open(tmp, "wb") as f:
                f.write(envelope.original_content or envelope.content)
            os.rename(tmp, os.path.join(folder, f"{stamp}.eml"))
        return "250 Message accepted"


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    os.makedirs(sys.argv[2], exist_ok=True)
    controller = Controller(Save(sys.argv[2]), hostname=host, port=int(port))
    controller.start()
    print(f"smtp sink on {host}:{port}, saving to {sys.argv[2]}", flush=True)
    try:
        asyncio.get_event_loop().run_forever()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
