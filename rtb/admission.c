/* admission.c -- the adaptive limit on open auctions (admission.h). */
#include "rtb/admission.h"

#include <math.h>
#include <string.h>

#define GRADIENT_MIN 0.5
#define GRADIENT_MAX 0.95
#define NEARLY_REACHED 0.75

const char *rtb_admission_verdict_str(rtb_admission_verdict v) {
    switch (v) {
    case RTB_ADMISSION_ACCEPT:
        return "accept";
    case RTB_ADMISSION_SHED_MAX:
        return "max_inflight";
    case RTB_ADMISSION_SHED_LIMIT:
        return "limit";
    case RTB_ADMISSION_SHED_LATE:
        return "late";
    case RTB_ADMISSION_VERDICTS:
        break;
    }
    return "unknown";
}

static void period_start(rtb_admission *a, int64_t now_us, int64_t cpu_us) {
    a->period_start_us = now_us;
    a->period_cpu_us = cpu_us;
    a->period_lag_max_us = 0;
    a->period_open_sum = 0;
    a->period_open_max = 0;
    a->period_probes = 0;
    a->period_deadline_closes = 0;
}

void rtb_admission_init(rtb_admission *a, int64_t lag_allow_us, int64_t tmax_us,
                        size_t max_inflight, int64_t now_us, int64_t cpu_us) {
    memset(a, 0, sizeof(*a));
    a->lag_allow_us = lag_allow_us;
    a->tmax_us = tmax_us;
    a->max_inflight = max_inflight < 1 ? 1 : max_inflight;
    a->limit = (double)a->max_inflight;
    period_start(a, now_us, cpu_us);
}

static double clamp(double x, double lo, double hi) {
    return x < lo ? lo : x > hi ? hi : x;
}

/* The lag this period tolerates (see the top of admission.h). */
static int64_t tolerated_lag_us(const rtb_admission *a) {
    int64_t quarter = a->tmax_us / 4;
    if (a->period_deadline_closes > 0 || quarter < a->lag_allow_us) return a->lag_allow_us;
    return quarter;
}

/* The end of a period: back off on lag or a full loop, grow when the limit
 * was nearly reached without either. */
static void update_limit(rtb_admission *a, int64_t now_us, int64_t cpu_us) {
    int64_t wall = now_us - a->period_start_us;
    a->busy = wall > 0 ? (double)(cpu_us - a->period_cpu_us) / (double)wall : 0;
    a->busy_periods = a->busy > RTB_ADMISSION_BUSY ? a->busy_periods + 1 : 0;
    double open_avg = a->period_probes ? a->period_open_sum / a->period_probes : 0;
    double lo = RTB_ADMISSION_MIN_LIMIT, hi = (double)a->max_inflight;
    if (lo > hi) lo = hi;
    int64_t tolerated = tolerated_lag_us(a);
    int lagging = a->period_lag_max_us > tolerated;
    int full = a->busy_periods >= RTB_ADMISSION_BUSY_PERIODS;
    if (lagging || full) {
        double g = GRADIENT_MAX;
        if (lagging) g = (double)tolerated / (double)a->period_lag_max_us;
        if (full && RTB_ADMISSION_BUSY / a->busy < g) g = RTB_ADMISSION_BUSY / a->busy;
        g = clamp(g, GRADIENT_MIN, GRADIENT_MAX);
        double base = open_avg < a->limit ? open_avg : a->limit;
        a->limit = clamp(base * g, lo, hi);
    } else if ((double)a->period_open_max >= NEARLY_REACHED * a->limit) {
        a->limit = clamp(a->limit + sqrt(a->limit), lo, hi);
    }
    period_start(a, now_us, cpu_us);
}

int rtb_admission_wants_cpu(const rtb_admission *a, int64_t now_us) {
    return a->period_start_us == 0 || now_us - a->period_start_us >= RTB_ADMISSION_PERIOD_US;
}

void rtb_admission_probe(rtb_admission *a, int64_t due_us, int64_t now_us, size_t open,
                         int64_t cpu_us) {
    if (a->period_start_us == 0) { /* the first probe starts the first period */
        period_start(a, now_us, cpu_us);
        return;
    }
    a->lag_us = now_us > due_us ? now_us - due_us : 0;
    if (a->lag_us > a->lag_allow_us) a->last_late_us = now_us;
    if (a->lag_us > a->period_lag_max_us) a->period_lag_max_us = a->lag_us;
    a->period_open_sum += (double)open;
    if (open > a->period_open_max) a->period_open_max = open;
    a->period_probes++;
    if (now_us - a->period_start_us >= RTB_ADMISSION_PERIOD_US) update_limit(a, now_us, cpu_us);
}

rtb_admission_verdict rtb_admission_decide(rtb_admission *a, size_t open,
                                           int64_t oldest_deadline_us, int64_t now_us) {
    rtb_admission_verdict v = RTB_ADMISSION_ACCEPT;
    if (open >= a->max_inflight)
        v = RTB_ADMISSION_SHED_MAX;
    else if ((double)open >= a->limit)
        v = RTB_ADMISSION_SHED_LIMIT;
    else if (oldest_deadline_us != 0 && now_us - oldest_deadline_us > a->lag_allow_us)
        v = RTB_ADMISSION_SHED_LATE;
    a->shed[v]++;
    return v;
}

void rtb_admission_deadline_close(rtb_admission *a) {
    a->period_deadline_closes++;
}

int rtb_admission_on_time(const rtb_admission *a, int64_t since_us) {
    return a->last_late_us < since_us;
}
