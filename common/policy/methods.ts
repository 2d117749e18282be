/**
 * The methods a route's `match.methods` authorizes. HEAD is authorized as
 * GET: Node and most frameworks answer HEAD with the GET handler, so a route
 * that takes GET takes HEAD too (a deny on GET would otherwise let HEAD run
 * the handler). The sidecar compiles routes with it once per snapshot, and
 * validation reasons with it, so both agree. Undefined: every method.
 */
export function authorizedMethods(
  methods: readonly string[] | undefined,
): readonly string[] | undefined {
  if (!methods?.includes('GET') || methods.includes('HEAD')) return methods;
  return [...methods, 'HEAD'];
}
