/*
 * pace: copy FILE's lines to stdout at RATE lines per second, one millisecond at a time.
 *
 *   pace [-p] [-s SEED] RATE FILE
 *
 * The benchmark's pacer (stream/load.py): `pace RATE FILE | kcat -P` offers a load whose
 * records kcat stamps as it reads them. `pv -L` lets a tenth of a second's lines through at
 * once (pv 1.6), so a worker fed by it sees bursts no card network makes; pace releases the
 * lines due by each millisecond tick, either evenly spaced or (-p) with exponential gaps, the
 * arrivals of many independent terminals (a Poisson process; -s seeds it, default 1).
 * About 1.5 % of a core at 2,000 lines/s on this project's machine (1,000 wake-ups a second).
 *
 * Exit status: 0 when every line was written, 1 on a read or write error, 2 on bad usage.
 */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int usage(void) {
    fputs("usage: pace [-p] [-s SEED] RATE FILE\n", stderr);
    return 2;
}

int main(int argc, char **argv) {
    int poisson = 0, i = 1;
    long seed = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "-p")) poisson = 1;
        else if (!strcmp(argv[i], "-s") && i + 1 < argc) seed = strtol(argv[++i], NULL, 10);
        else return usage();
    }
    if (argc - i != 2) return usage();
    char *end;
    double rate = strtod(argv[i], &end);
    if (*end || !(rate > 0)) return usage();
    FILE *in = fopen(argv[i + 1], "r");
    if (!in) {
        fprintf(stderr, "pace: %s: %s\n", argv[i + 1], strerror(errno));
        return 1;
    }
    srand48(seed);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    double due = 0.0, start = seconds();
    const struct timespec tick = {0, 1000000};
    for (;;) {
        double now = seconds() - start;
        while (due <= now) {
            if ((n = getline(&line, &cap, in)) < 0) {
                int failed = ferror(in);
                if (fflush(stdout) != 0 || failed) {
                    fprintf(stderr, "pace: %s\n", strerror(errno));
                    return 1;
                }
                return 0;
            }
            if (fwrite(line, 1, (size_t)n, stdout) != (size_t)n) {
                fprintf(stderr, "pace: write: %s\n", strerror(errno));
                return 1;
            }
            due += poisson ? -log(1.0 - drand48()) / rate : 1.0 / rate;
        }
        if (fflush(stdout) != 0) {
            fprintf(stderr, "pace: write: %s\n", strerror(errno));
            return 1;
        }
        nanosleep(&tick, NULL);
    }
}
