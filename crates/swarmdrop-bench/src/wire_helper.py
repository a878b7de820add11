"""Helper for `swarmdrop bench wire`: libtorrent seeders and leechers (TCP only, every
discovery off), and a wrapper that runs a command and reports its CPU time and peak RSS.
Each mode prints one JSON line on stdout."""

import json
import resource
import subprocess
import sys
import time


def session(ip):
    import libtorrent as lt

    return lt.session({
        "listen_interfaces": f"{ip}:0",
        "outgoing_interfaces": ip,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "alert_mask": 0,
    })


def add(ses, torrent, save_path):
    import libtorrent as lt

    atp = lt.load_torrent_file(torrent)
    atp.trackers = []
    atp.url_seeds = []
    atp.save_path = save_path
    atp.flags &= ~lt.torrent_flags.auto_managed
    atp.flags &= ~lt.torrent_flags.paused
    atp.flags |= lt.torrent_flags.disable_dht | lt.torrent_flags.disable_lsd | lt.torrent_flags.disable_pex
    return ses.add_torrent(atp)


def usage(who):
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime, r.ru_maxrss * 1024


def main():
    mode = sys.argv[1]
    if mode == "seed":
        torrent, save_path, ip = sys.argv[2:5]
        ses = session(ip)
        handle = add(ses, torrent, save_path)
        while not handle.status().is_seeding:
            time.sleep(0.05)
        print(json.dumps({"port": ses.listen_port()}), flush=True)
        while True:
            time.sleep(3600)
    elif mode == "get":
        torrent, save_path, ip, peer = sys.argv[2:6]
        host, port = peer.rsplit(":", 1)
        ses = session(ip)
        started = time.monotonic()
        handle = add(ses, torrent, save_path)
        handle.connect_peer((host, int(port)))
        deadline = started + 600
        while not handle.status().is_seeding:
            if time.monotonic() > deadline:
                print(json.dumps({"error": f"incomplete: {handle.status().progress:.1%}"}), flush=True)
                sys.exit(1)
            time.sleep(0.02)
        seconds = time.monotonic() - started
        cpu, rss = usage(resource.RUSAGE_SELF)
        print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "peak_rss": rss}), flush=True)
    elif mode == "measure":
        started = time.monotonic()
        proc = subprocess.run(sys.argv[3:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        seconds = time.monotonic() - started
        cpu, rss = usage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            print(json.dumps({"error": proc.stderr[-500:]}), flush=True)
            sys.exit(1)
        print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "peak_rss": rss}), flush=True)
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
