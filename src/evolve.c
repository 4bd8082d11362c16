/*
 * evolve.c - HAKMEM_MODE=evolving: the in-process tuner thread (placeholder
 * until the tuner lands: evolving currently behaves like fixed).
 */
#include "hak_internal.h"
