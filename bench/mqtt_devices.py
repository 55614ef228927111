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


def main() -> None:
    if sys.argv[1] == "subscribe":
        subscribe(int(sys.argv[2]), int(sys.argv[3]))
        return
    port, devices, count, rate = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, f"bench-devices-{time.monotonic_ns()}")
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port, keepalive=60)
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
    start = time.perf_counter()
    interval = 1.0 / rate if rate else 0.0
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
