# SPDX-License-Identifier: BSD-3-Clause
# A UDP echo server on the port given (run by the mhost tests): each
# datagram goes back to its sender, prefixed with the address it came to.
import socket, sys

port = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, 8, 1)  # IP_PKTINFO
s.bind(("0.0.0.0", port))
while True:
    d, anc, _, a = s.recvmsg(65535, 1024)
    to = socket.inet_ntoa(anc[0][2][8:12]) if anc else "?"
    s.sendto(to.encode() + b" " + d, a)
