"""Simulated MQTT devices for bench/mqtt_ingest.py, in their own process (so they do not share
the hub's core): announce, then publish JSON readings with paho, flat out or at a fixed rate.

Usage: mqtt_devices.py publish PORT DEVICES COUNT RATE
         announce, print "announced", wait for a line on stdin, publish COUNT readings
         (RATE 0 = flat out). Each is {"t": <send time>, "n": <seq>} on `bench/<device>/state`;
         the discovery config makes `t` the sensor's state. Prints the rate achieved.
       mqtt_devices.py subscribe PORT COUNT
         a bare subscriber to bench/#: prints "subscribed", then the rate at which it
         received COUNT messages (first to last).
"""

from __future__ import annotations

import json
import socket
import sys
import time
from typing import Any

import paho.mqtt.client as paho


def subscribe(port: int, count: int) -> None:
    import threading

    done = threading.Event()
    received = 0
    first = last = 0.0

    def on_message(client: Any, userdata: Any, message: Any) -> None:
        nonlocal received, first, last
        last = time.perf_counter()
        if received == 0:
            first = last
        received += 1
        if received >= count:
            done.set()

    client = paho.Client(paho.CallbackAPIVersion.VERSION2, f"bench-ceiling-{time.monotonic_ns()}")
    client.on_message = on_message
    client.connect("127.0.0.1", port, keepalive=60)
    client.subscribe("bench/#", 0)
    client.loop_start()
    time.sleep(0.3)
    sys.stdout.write("subscribed\n")
    sys.stdout.flush()
    done.wait(120)
    client.loop_stop()
    print(round(received / max(last - first, 1e-9)))


def _publish_packet(topic: bytes, payload: bytes) -> bytes:
    """An MQTT 3.1.1 PUBLISH, QoS 0: fixed header, remaining length, topic, payload."""
    body = len(topic).to_bytes(2, "big") + topic + payload
    length, encoded = len(body), bytearray()
    while True:
        length, digit = divmod(length, 128)
        encoded.append(digit | (0x80 if length else 0))
        if not length:
            return b"\x30" + bytes(encoded) + body


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    client_id = f"bench-flat-{time.monotonic_ns()}".encode()
    variable = b"\x00\x04MQTT\x04\x02\x00\x3c"  # MQTT 3.1.1, clean session, keep-alive 60
    body = variable + len(client_id).to_bytes(2, "big") + client_id
    sock.sendall(b"\x10" + bytes([len(body)]) + body)
    if sock.recv(4)[:1] != b"\x20":
        raise RuntimeError("no CONNACK")
    return sock


def flat_out(port: int, topics: list[str], count: int, connections: int = 10) -> int:
    """Readings as fast as the broker takes them: real MQTT packets written in batches over
    `connections` connections, each device's readings on one of them (paho, one packet per call,
    is slower than the brokers here and would measure itself)."""
    socks = [_connect(port) for _ in range(min(connections, len(topics)))]
    encoded = [topic.encode() for topic in topics]
    start = time.perf_counter()
    batches: list[list[bytes]] = [[] for _ in socks]
    for seq in range(count):
        device = seq % len(encoded)
        batch = batches[device % len(socks)]
        batch.append(_publish_packet(encoded[device], b'{"t":%.6f,"n":%d}' % (time.time(), seq)))
        if len(batch) == 100:
            socks[device % len(socks)].sendall(b"".join(batch))
            batch.clear()
    for sock, batch in zip(socks, batches):
        sock.sendall(b"".join(batch) + b"\xe0\x00")  # and DISCONNECT
    elapsed = time.perf_counter() - start
    for sock in socks:
        sock.close()
    return round(count / elapsed)


def main() -> None:
    if sys.argv[1] == "subscribe":
        subscribe(int(sys.argv[2]), int(sys.argv[3]))
        return
    port, devices, count, rate = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, f"bench-devices-{time.monotonic_ns()}")
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port, keepalive=60)
    # Without it Nagle's algorithm holds small readings back: p99 ~13 ms instead of <1 ms.
    client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.loop_start()
    for index in range(devices):
        config = {
            "name": "Reading", "stat_t": f"bench/d{index}/state", "val_tpl": "{{ value_json.t }}",
            "uniq_id": f"bench_d{index}", "frc_upd": True,
            "dev": {"ids": [f"bench_d{index}"], "name": f"Bench device {index}"},
        }
        client.publish(f"homeassistant/sensor/d{index}/reading/config", json.dumps(config), qos=1).wait_for_publish(10)
    sys.stdout.write("announced\n")
    sys.stdout.flush()
    sys.stdin.readline()  # go
    topics = [f"bench/d{index}/state" for index in range(devices)]
    if not rate:
        client.loop_stop()
        client.disconnect()
        print(flat_out(port, topics, count))
        return
    start = time.perf_counter()
    interval = 1.0 / rate
    for seq in range(count):
        if interval:
            target = start + seq * interval
            while (delay := target - time.perf_counter()) > 0:
                time.sleep(min(delay, 0.001))
        payload = b'{"t":%.6f,"n":%d}' % (time.time(), seq)
        while True:
            info = client.publish(topics[seq % devices], payload)
            if info.rc == paho.MQTT_ERR_SUCCESS:
                break
            time.sleep(0.0005)  # paho's queue is full: let the network thread drain it
    elapsed = time.perf_counter() - start
    time.sleep(0.2)
    client.loop_stop()
    client.disconnect()
    print(round(count / elapsed))


if __name__ == "__main__":
    main()
