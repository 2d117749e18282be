/**
 * What injected pods are given, shared by the control plane's webhook and
 * the CLI that configures it (`postern control-plane`, `postern inject`).
 */
/** How this mesh injects: where the control plane is, the image, the defaults. */
export interface InjectionSettings {
  readonly image: string;
  /** The control plane's URL as pods reach it (its Service). */
  readonly controlPlaneUrl: string;
  readonly trustDomain: string;
  /** The ConfigMap holding the mesh's trust bundle (ca.crt), in every namespace. */
  readonly caConfigMap: string;
}

export const DEFAULT_INJECTION: InjectionSettings = Object.freeze({
  image: 'ghcr.io/postern-mesh/postern:latest',
  controlPlaneUrl: 'https://postern-control-plane.postern-system.svc:15010',
  trustDomain: 'cluster.local',
  caConfigMap: 'postern-ca-root',
});
