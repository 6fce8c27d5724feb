/* The floor of the job's CPU cost on this machine: a C loop that wakes once a
 * second on an absolute deadline and reads the aggregate line of /proc/stat
 * with one pread, and does nothing else (no parsing, probing or publishing).
 * bench/run.sh builds it and measures it beside the agents; no per-second
 * sampler can cost less than this. */
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

int main(void) {
    char buf[512];
    struct timespec t;
    int fd = open("/proc/stat", O_RDONLY);
    if (fd < 0)
        return 1;
    clock_gettime(CLOCK_MONOTONIC, &t);
    for (;;) {
        t.tv_sec += 1;
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL);
        if (pread(fd, buf, sizeof buf, 0) <= 0)
            return 1;
    }
}
