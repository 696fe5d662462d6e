#include "cvq_support.h"

#if defined(__linux__)
#include <sys/epoll.h>
#include <unistd.h>

int cvq_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int cvq_epoll_ctl(int epfd, int op, int fd, int readable, int writable) {
    struct epoll_event ev;
    // EPOLLRDHUP only while reading: after a half-close it would fire forever (level-triggered).
    ev.events = (readable ? (EPOLLIN | EPOLLRDHUP) : 0) | (writable ? EPOLLOUT : 0);
    ev.data.fd = fd;
    int kind = op == 0 ? EPOLL_CTL_ADD : op == 1 ? EPOLL_CTL_MOD : EPOLL_CTL_DEL;
    return epoll_ctl(epfd, kind, fd, &ev);
}

int cvq_epoll_wait(int epfd, int *fds, uint32_t *events, int max, int timeout_ms) {
    struct epoll_event evs[512];
    if (max > 512) max = 512;
    int n = epoll_wait(epfd, evs, max, timeout_ms);
    for (int i = 0; i < n; i++) {
        fds[i] = evs[i].data.fd;
        uint32_t e = evs[i].events, out = 0;
        if (e & EPOLLIN) out |= 1;
        if (e & EPOLLOUT) out |= 2;
        if (e & (EPOLLHUP | EPOLLERR | EPOLLRDHUP)) out |= 4;
        events[i] = out;
    }
    return n;
}
#else
int cvq_epoll_create(void) { return -1; }
int cvq_epoll_ctl(int epfd, int op, int fd, int readable, int writable) { (void)epfd; (void)op; (void)fd; (void)readable; (void)writable; return -1; }
int cvq_epoll_wait(int epfd, int *fds, uint32_t *events, int max, int timeout_ms) { (void)epfd; (void)fds; (void)events; (void)max; (void)timeout_ms; return -1; }
#endif
