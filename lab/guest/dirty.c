/*
 * kvmfleet lab guest: memory dirtier.
 *
 * Usage: dirty RATE_MIB_S BUF_MIB [REPORT_S]
 *
 * Dirties RATE MiB of guest pages per second, cycling through a BUF MiB
 * buffer, and prints the achieved rate every REPORT_S seconds (default 5):
 *   KVMFLEET-DIRTY rate_mib_s=<achieved> target_mib_s=<RATE> buf_mib=<BUF>
 *
 * A page counts as dirtied when one 8-byte word in it is written: that is
 * what dirty-page tracking (live migration) sees, and it keeps the cost low
 * under TCG.  Work is paced in 10 ms slices against CLOCK_MONOTONIC with
 * absolute sleeps, so the rate does not drift.  If the CPU cannot keep up,
 * the achieved rate printed is lower than the target (never faked).
 *
 * Time the vCPU did not get is lost, not made up in a burst afterwards: like
 * a real application, the dirtier writes in proportion to the CPU it gets.
 * That is what live migration's auto-converge relies on (it throttles the
 * vCPUs); a dirtier that caught up after each throttle pause would dirty its
 * whole buffer every iteration whatever the throttle.
 *
 * Built static (gcc -static -O2) so it runs on the busybox initramfs.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL
#define SLICE_NS 10000000L /* 10 ms */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s RATE_MIB_S BUF_MIB [REPORT_S]\n", argv[0]);
        return 2;
    }
    double rate = strtod(argv[1], NULL);
    long buf_mib = strtol(argv[2], NULL, 10);
    double report = argc > 3 ? strtod(argv[3], NULL) : 5.0;
    if (rate <= 0 || buf_mib <= 0 || report <= 0) {
        fprintf(stderr, "dirty: RATE, BUF and REPORT must be > 0\n");
        return 2;
    }
    size_t npages = (size_t)buf_mib * (1024 * 1024 / PAGE);
    unsigned char *buf = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (buf == MAP_FAILED) {
        perror("dirty: mmap");
        return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);

    /* pages per 10 ms slice; carry the fraction so low rates stay exact */
    double pages_per_slice = rate * (1024 * 1024 / PAGE) * (SLICE_NS / 1e9);
    double carry = 0;
    size_t pos = 0;
    uint64_t gen = 0, done = 0;
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    double t0 = now_s();

    for (;;) {
        carry += pages_per_slice;
        size_t n = (size_t)carry;
        carry -= n;
        for (size_t i = 0; i < n; i++) {
            *(volatile uint64_t *)(buf + pos * PAGE + (gen & 511) * 8) = gen;
            if (++pos == npages) {
                pos = 0;
                gen++;
            }
        }
        done += n;

        next.tv_nsec += SLICE_NS;
        if (next.tv_nsec >= 1000000000L) {
            next.tv_nsec -= 1000000000L;
            next.tv_sec++;
        }
        struct timespec cur;
        clock_gettime(CLOCK_MONOTONIC, &cur);
        /* behind (the vCPU was descheduled or throttled): drop the missed slices */
        if (cur.tv_sec > next.tv_sec || (cur.tv_sec == next.tv_sec && cur.tv_nsec > next.tv_nsec))
            next = cur;
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);

        double t = now_s();
        if (t - t0 >= report) {
            double mib = (double)done * PAGE / (1024 * 1024);
            printf("KVMFLEET-DIRTY rate_mib_s=%.1f target_mib_s=%.1f buf_mib=%ld\n",
                   mib / (t - t0), rate, buf_mib);
            done = 0;
            t0 = t;
        }
    }
}
