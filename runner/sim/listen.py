"""What the simulators' listening sockets share.

LISTEN_BACKLOG is the length of the accept queue. socketserver's default of 5 made parallel
clients look slow: when more connections arrive at once than the queue holds, Linux drops
the extra SYNs and those clients connect only after their first SYN retransmission, about a
second later (the initial retransmission timeout of RFC 6298). 128 was Linux's SOMAXCONN
for years, enough for a fan-out of tens of workers."""

LISTEN_BACKLOG = 128
