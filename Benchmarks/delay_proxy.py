#!/usr/bin/env python3
"""A TCP proxy that holds one peer's traffic at random moments, for Benchmarks/tail-latency.sh's
network mode: listens on LISTEN_PORT, forwards to 127.0.0.1:TARGET_PORT both ways. After SIGUSR1
it stalls everything passing through for STALL_MS at random moments (a window starts after a
uniformly random 0.5x to 1.5x of PERIOD_MS); SIGUSR2 makes it healthy again. Bytes are never
dropped or reordered, only held, as a congested link or a retransmission would hold them.

  delay_proxy.py LISTEN_PORT TARGET_PORT [STALL_MS=50] [PERIOD_MS=500] [SEED=1]
"""
import asyncio
import random
import signal
import sys

listen_port, target_port = int(sys.argv[1]), int(sys.argv[2])
stall_s = (int(sys.argv[3]) if len(sys.argv) > 3 else 50) / 1000
period_s = (int(sys.argv[4]) if len(sys.argv) > 4 else 500) / 1000
rng = random.Random(int(sys.argv[5]) if len(sys.argv) > 5 else 1)
state = {"on": False, "open": asyncio.Event()}


async def stalls():
    state["open"].set()
    while True:
        await asyncio.sleep(period_s * rng.uniform(0.5, 1.5))
        if state["on"]:
            state["open"].clear()
            await asyncio.sleep(stall_s)
            state["open"].set()


async def pipe(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            await state["open"].wait()
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def handle(reader, writer):
    try:
        target_reader, target_writer = await asyncio.open_connection("127.0.0.1", target_port)
    except OSError:
        writer.close()
        return
    await asyncio.gather(pipe(reader, target_writer), pipe(target_reader, writer))


async def main():
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, lambda: state.update(on=True))
    loop.add_signal_handler(signal.SIGUSR2, lambda: state.update(on=False))
    asyncio.create_task(stalls())
    server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
    print(f"delay proxy 127.0.0.1:{listen_port} -> {target_port}", flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
