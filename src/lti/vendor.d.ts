// ltijs 5 and ltijs-sequelize 2 ship no TypeScript types; src/lti/ltijs.ts
// narrows what they export to the slice this project uses.
declare module 'ltijs' {
  const ltijs: { Provider: object };
  export default ltijs;
}
declare module 'ltijs-sequelize' {
  const Database: new (database: string, user: string, pass: string, options: Record<string, unknown>) => object;
  export default Database;
}
