// dslaunch: placeholder main until lib/launch lands (issue 2).
#include <cstdio>
int main() { std::fprintf(stderr, "dslaunch: not built yet\n"); return 1; }
