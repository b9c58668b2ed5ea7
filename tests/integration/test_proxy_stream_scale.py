"""Reads stream through the proxy at a migration's scale (issue 9): the checks of test_proxy_stream.py
on a 3 GiB file and a 200,000-entry directory, with the default stream buffer (limits.stream_buffer_bytes,
1 MiB). The proxy's peak RSS may grow by at most 64 MiB while it relays the whole file, however slow the
reader. Also prints, for the README's numbers, the OPEN throughput and the full-listing time through the
proxy next to the same read straight from the Gen1 emulator (printed, not asserted: timings are not
tests).

ctest label `scale` only (not `integration`): it writes 3 GiB to disk and the Gen1 emulator holds
200,000 nodes (about 19 KiB each, some 4 GB of RAM), which the ASan stage cannot afford.
"""
import time

import emulib
import test_proxy_stream as ts

MiB = ts.MiB
GiB = 1024 * MiB


class StreamScale(ts.Stream):
    FILE_SIZE = 3 * GiB + 4321
    RSS_BOUND_MIB = 64
    ENTRIES = 200000
    STREAM_BUFFER = 1 * MiB     # the default
    test_open_streams_bounded = None  # test_throughput reads the whole file under the same bound

    def test_throughput(self):
        """OPEN of the whole file, straight from Gen1 and through the proxy, two rounds each, alternating
        (printed for the README: the best of each)."""
        target = ts.open_target(self.big)
        t_direct, t_via = [], []
        for _ in range(2):
            status, _, n, sha, t = ts.stream_get(self.s.gen1.url, target)
            self.assertEqual((status, n, sha), (200, self.FILE_SIZE, self.big_sha))
            t_direct.append(t)
            t_via.append(self.read_bounded("OPEN of %.1f GiB through the proxy" % (self.FILE_SIZE / GiB)))
        n = self.FILE_SIZE
        print("OPEN %.1f GiB: direct %.2f s (%.0f MiB/s), through the proxy %.2f s (%.0f MiB/s) (best of 2)"
              % (n / GiB, min(t_direct), n / MiB / min(t_direct), min(t_via), n / MiB / min(t_via)))

    def test_large_listing(self):
        t0 = time.monotonic()
        super().test_large_listing()
        print("(%d entries created, listed whole and in pages, in %.1f s)" % (self.ENTRIES, time.monotonic() - t0))



if __name__ == "__main__":
    emulib.main()
