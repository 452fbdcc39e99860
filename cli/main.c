/* placeholder until the real main.c lands (owned by the cli engineer) */
int main(void) { return 1; }
