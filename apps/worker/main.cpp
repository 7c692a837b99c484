// dsworker: placeholder main until the worker lands (issue 3).
#include <cstdio>
int main() { std::fprintf(stderr, "dsworker: not built yet\n"); return 1; }
