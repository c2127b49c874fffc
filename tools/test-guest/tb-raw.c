/* tb-raw: a hostile guest's frame sender (the test guest has no other way
 * to put arbitrary frames on its NIC).
 *   tb-raw IFACE ether TYPE COUNT   broadcast COUNT frames of ethertype TYPE (hex)
 *   tb-raw IFACE garp IP COUNT      gratuitous ARP (request and reply) claiming IP
 * Frames carry the interface's own MAC as source. */
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: tb-raw IFACE ether TYPE COUNT | IFACE garp IP COUNT\n");
        return 2;
    }
    int s = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
    if (s < 0) { perror("socket"); return 1; }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, argv[1], IFNAMSIZ - 1);
    if (ioctl(s, SIOCGIFINDEX, &ifr) < 0) { perror("SIOCGIFINDEX"); return 1; }
    int index = ifr.ifr_ifindex;
    if (ioctl(s, SIOCGIFHWADDR, &ifr) < 0) { perror("SIOCGIFHWADDR"); return 1; }
    unsigned char mac[6];
    memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
    struct sockaddr_ll to;
    memset(&to, 0, sizeof to);
    to.sll_family = AF_PACKET;
    to.sll_ifindex = index;
    to.sll_halen = 6;
    memset(to.sll_addr, 0xff, 6);
    int count = atoi(argv[4]);
    for (int i = 0; i < count; i++) {
        for (int op = 1; op <= 2; op++) {
            unsigned char f[60];
            memset(f, 0, sizeof f);
            memset(f, 0xff, 6);
            memcpy(f + 6, mac, 6);
            if (strcmp(argv[2], "ether") == 0) {
                unsigned type = strtoul(argv[3], NULL, 16);
                f[12] = type >> 8; f[13] = type & 0xff;
                memcpy(f + 14, "TB-RAW", 6);
                op = 2;
            } else {
                struct in_addr ip;
                if (inet_pton(AF_INET, argv[3], &ip) != 1) { fprintf(stderr, "bad IP\n"); return 2; }
                f[12] = 0x08; f[13] = 0x06;                  /* ARP */
                unsigned char *a = f + 14;
                a[0] = 0; a[1] = 1; a[2] = 8; a[3] = 0; a[4] = 6; a[5] = 4;
                a[6] = 0; a[7] = op;
                memcpy(a + 8, mac, 6); memcpy(a + 14, &ip, 4);      /* sender: us, IP */
                if (op == 2) memset(a + 18, 0xff, 6);
                memcpy(a + 24, &ip, 4);                              /* target: IP */
            }
            if (sendto(s, f, sizeof f, 0, (struct sockaddr *)&to, sizeof to) < 0) {
                perror("sendto");
                return 1;
            }
        }
        usleep(100000);
    }
    return 0;
}
