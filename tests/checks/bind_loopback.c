/* LD_PRELOAD shim for test daemons that cannot be told which address to listen on (Orthanc 1.10 binds every
 * interface): a bind() to 0.0.0.0 becomes a bind() to $TCMSCAN_BIND_ADDRESS, and any other bind() that is not
 * loopback (IPv4 or IPv6) fails with EADDRNOTAVAIL. The tests also check the daemon's listening sockets. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
    static int (*real)(int, const struct sockaddr *, socklen_t);
    if (!real) real = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "bind");
    const char *want = getenv("TCMSCAN_BIND_ADDRESS");
    if (addr && addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        struct sockaddr_in a;
        memcpy(&a, addr, sizeof a);
        if (a.sin_addr.s_addr == htonl(INADDR_ANY) && want && inet_pton(AF_INET, want, &a.sin_addr) == 1)
            return real(fd, (const struct sockaddr *)&a, sizeof a);
        if ((ntohl(a.sin_addr.s_addr) >> 24) != 127) { errno = EADDRNOTAVAIL; return -1; }
    }
    if (addr && addr->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)addr;
        if (!IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr)) { errno = EADDRNOTAVAIL; return -1; }
    }
    return real(fd, addr, len);
}
