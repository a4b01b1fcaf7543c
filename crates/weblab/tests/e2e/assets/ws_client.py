"""A real WebSocket client (the `websockets` package) through the world's
load balancer: the chat, then STOMP 1.2 as a subprotocol.
Usage: ws_client.py LB_ADDR HTTPS_PORT CA_FILE"""
import asyncio
import ssl
import sys

import websockets

LB, PORT, CA = sys.argv[1], int(sys.argv[2]), sys.argv[3]


def ctx():
    c = ssl.create_default_context(cafile=CA)
    return c


async def chat():
    uri = f"wss://myapp.test:{PORT}/ws/chat/lobby"
    async with websockets.connect(uri, ssl=ctx(), host=LB, port=PORT, server_hostname="myapp.test") as ws:
        await ws.send("hi from python")
        while True:
            msg = await asyncio.wait_for(ws.recv(), 5)
            if "hi from python" in msg:
                print("chat:", msg)
                break
    print("chat close code:", ws.close_code)


async def stomp():
    uri = f"wss://myapp.test:{PORT}/ws/stomp"
    async with websockets.connect(uri, ssl=ctx(), host=LB, port=PORT, server_hostname="myapp.test",
                                  subprotocols=["v12.stomp"]) as ws:
        print("stomp subprotocol:", ws.subprotocol)
        await ws.send("CONNECT\naccept-version:1.2\nhost:myapp.test\n\n\0")
        print("stomp:", (await asyncio.wait_for(ws.recv(), 5)).split("\n")[0])
        await ws.send("SUBSCRIBE\nid:0\ndestination:/topic/py\n\n\0")
        await ws.send("SEND\ndestination:/topic/py\n\nfrom python\0")
        msg = await asyncio.wait_for(ws.recv(), 5)
        print("stomp:", msg.split("\n")[0], msg.split("\n\n", 1)[1].rstrip("\0"))
        await ws.send("DISCONNECT\nreceipt:77\n\n\0")
        print("stomp:", (await asyncio.wait_for(ws.recv(), 5)).split("\n")[0])


asyncio.run(chat())
asyncio.run(stomp())
